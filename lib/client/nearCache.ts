import { LRUCache } from 'lru-cache';
import { InvalidArgumentError } from '../core/errors.ts';

/** Options of the reader's near-cache (`openReader({ nearCache })`). */
export interface NearCacheOptions {
  /** At most this many records (present or known absent) are held; the least recently used goes first. */
  readonly maxRecords: number;
  /** At most about this many bytes: each entry counts its encoded record's size plus its key's length plus {@link ENTRY_OVERHEAD_BYTES}. */
  readonly maxBytes?: number;
  /** Called for every announcement of the change stream the cache has applied (for metrics). */
  readonly onInvalidation?: (event: InvalidationEvent) => void;
}

/** One announcement of the change stream, as applied by the near-cache. */
export interface InvalidationEvent {
  /** The writer step announced. */
  readonly step: number;
  /** How many keys it named, or `'all'`. */
  readonly keys: number | 'all';
  /** Milliseconds from the step's publication in Redis (Redis's clock) to the cache having dropped its keys (this process's clock). */
  readonly stalenessMs: number;
}

/** Counters and staleness of a near-cache: `TableReader.nearCacheStats()` and `info().nearCache`. */
export interface NearCacheStats {
  /** `get`/`getMany` calls answered from the near-cache. */
  readonly hits: number;
  /** Calls that went to Redis while the cache was in use (some key absent). */
  readonly misses: number;
  /** Calls that went to Redis because the cache was not in use (no subscription, or behind a barrier). */
  readonly bypasses: number;
  /** Entries held now. */
  readonly records: number;
  /** Bytes held now, as counted against `maxBytes`. */
  readonly bytes: number;
  /** Whether the change stream is subscribed and the cache in use. */
  readonly active: boolean;
  /** The latest writer step seen on the change stream (null while not subscribed). */
  readonly streamStep: number | null;
  /** Announcements applied since the reader opened. */
  readonly invalidations: number;
  /** Staleness over the last 10,000 announcements, in ms (null before the first). */
  readonly staleness: { readonly p50: number; readonly p99: number; readonly max: number; readonly samples: number } | null;
}

/** Bytes counted per entry besides its record and key: the entry object and the LRU's slots. */
export const ENTRY_OVERHEAD_BYTES = 64;
const STALENESS_SAMPLES = 10_000;
/** Values read ahead of the stream wait at most in this number. */
const MAX_PENDING = 10_000;

/** A cached answer: a record, or `undefined` when the table has no record with the key. */
export interface NearCacheEntry<R> {
  readonly record: R | undefined;
  readonly size: number;
}

/** One announcement of the change stream, parsed (docs/redis-key-layout.md, "Change stream"). */
export interface ChangeAnnouncement {
  readonly step: number;
  /** Redis's clock at publication, µs since the epoch. */
  readonly atMicros: number;
  /** The changed keys (primary-key fields), or `'all'`. */
  readonly keys: readonly string[] | 'all';
}

/**
 * Parses one message of a table's change channel. Anything unreadable
 * counts as "everything changed" at an unknown step: dropping the whole
 * cache is always safe, trusting a malformed message never is.
 */
export function parseChangeAnnouncement(message: string): ChangeAnnouncement | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { v, step, at, all, keys } = parsed as Record<string, unknown>;
  if (v !== 1 || typeof step !== 'number' || !Number.isSafeInteger(step)) return null;
  const atMicros = typeof at === 'string' ? Number(at) : NaN;
  if (all === true) return { step, atMicros, keys: 'all' };
  if (keys === undefined) return { step, atMicros, keys: [] };
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) return null;
  return { step, atMicros, keys: keys as string[] };
}

/**
 * The near-cache of one table reader: an LRU of decoded records, kept
 * coherent by the writer's change stream.
 *
 * The invariant: while active, every entry is the record (or its absence)
 * at `streamStep`, the latest step seen on the stream. It holds because
 * (1) an announcement drops the keys its step changed before the step
 * counts as seen; (2) a value read from Redis enters only when it was read
 * at exactly `streamStep` (a value read at a later step waits until the
 * stream reaches that step, one read at an earlier step is not kept); and
 * (3) losing the subscription empties the cache and stops its use until a
 * new subscription has established the step. So entries are all valid at
 * one step, and a `getMany` answered from them is one snapshot.
 *
 * `floorStep` carries read-your-writes: a waited-for barrier raises it to
 * the table's step after the barrier, and the cache answers nothing until
 * the stream has reached it.
 *
 * Pure bookkeeping (no I/O), so it is unit tested with made-up
 * announcements; `ChangeSubscription` feeds it.
 */
export class NearCache<R> {
  private readonly entries: LRUCache<string, NearCacheEntry<R>>;
  /** Values read at a step the stream has not reached, by that step. */
  private readonly pending = new Map<number, [string, NearCacheEntry<R>][]>();
  private pendingCount = 0;
  private streamStep: number | null = null;
  private active = false;
  private floorStep = -Infinity;
  /** Changes whenever the cache is emptied by a lost subscription: a read begun before never fills it. */
  epoch = 0;
  private hits = 0;
  private misses = 0;
  private bypasses = 0;
  private invalidations = 0;
  private stalenessSamples = 0;
  private readonly staleness = new Float64Array(STALENESS_SAMPLES);

  /** @throws {@link InvalidArgumentError} when `maxRecords` or `maxBytes` is not a positive integer. */
  constructor(private readonly options: NearCacheOptions) {
    const { maxRecords, maxBytes } = options;
    if (!Number.isSafeInteger(maxRecords) || maxRecords <= 0) {
      throw new InvalidArgumentError(`nearCache.maxRecords must be a positive integer (how many records to keep in process), got ${String(maxRecords)}.`);
    }
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)) {
      throw new InvalidArgumentError(`nearCache.maxBytes must be a positive integer number of bytes when given, got ${String(maxBytes)}.`);
    }
    this.entries = new LRUCache<string, NearCacheEntry<R>>({
      max: maxRecords,
      ...(maxBytes === undefined ? {} : { maxSize: maxBytes, sizeCalculation: (entry: NearCacheEntry<R>) => entry.size }),
    });
  }

  /** Whether lookups may be answered now. */
  get usable(): boolean {
    return this.active && this.streamStep! >= this.floorStep;
  }

  /** The cached entry of `field`, or undefined (then the caller reads Redis and counts a miss). */
  lookup(field: string): NearCacheEntry<R> | undefined {
    return this.entries.get(field);
  }

  /** A `get` from the cache: the entry, or undefined when the caller must read Redis (counted as a hit, miss or bypass). */
  answerOne(field: string): NearCacheEntry<R> | undefined {
    if (!this.usable) {
      this.bypasses++;
      return undefined;
    }
    const entry = this.entries.get(field);
    if (entry === undefined) this.misses++;
    else this.hits++;
    return entry;
  }

  /**
   * A `getMany` from the cache: every record asked for (one snapshot, since
   * all entries are valid at the stream's step), or null when one is
   * missing and the caller must read them all from Redis.
   */
  answerAll(fields: readonly string[]): (R | undefined)[] | null {
    if (!this.usable) {
      this.bypasses++;
      return null;
    }
    const records: (R | undefined)[] = new Array(fields.length);
    for (let i = 0; i < fields.length; i++) {
      const entry = this.entries.get(fields[i]!);
      if (entry === undefined) {
        this.misses++;
        return null;
      }
      records[i] = entry.record;
    }
    this.hits++;
    return records;
  }

  /**
   * Offers records read from Redis at `step` (`records[i]` for `fields[i]`,
   * `sizes[i]` its encoded size) by a read that began in `epoch`. Freezes
   * the records in place, kept or not, so that every record a near-cached
   * reader returns behaves alike.
   */
  fill(epoch: number, step: number, fields: readonly string[], records: (R | undefined)[], sizes: readonly number[]): void {
    for (let i = 0; i < records.length; i++) records[i] = deepFreeze(records[i]);
    if (!this.active || epoch !== this.epoch || step < this.floorStep) return;
    const streamStep = this.streamStep!;
    if (step < streamStep) return;
    if (step === streamStep) {
      for (let i = 0; i < fields.length; i++) this.entries.set(fields[i]!, this.entry(fields[i]!, records[i], sizes[i]!));
      return;
    }
    if (this.pendingCount + fields.length > MAX_PENDING) return;
    let waiting = this.pending.get(step);
    if (waiting === undefined) this.pending.set(step, (waiting = []));
    for (let i = 0; i < fields.length; i++) waiting.push([fields[i]!, this.entry(fields[i]!, records[i], sizes[i]!)]);
    this.pendingCount += fields.length;
  }

  /**
   * Applies one announcement (null: unreadable, treated as "everything").
   * `nowMicros` is this process's clock, for the staleness measure.
   */
  apply(announcement: ChangeAnnouncement | null, nowMicros: number): void {
    if (announcement === null || announcement.keys === 'all') {
      this.entries.clear();
      this.dropPending();
    } else {
      for (const key of announcement.keys) this.entries.delete(key);
      // A value waiting for a later step may predate this change only if it was read before it: it was read at a later step, so it includes it.
    }
    if (announcement === null) return;
    if (announcement.keys === 'all') {
      // A reload or a new table (its steps may start again from 1): the cache is empty, so any step is a valid start.
      this.streamStep = announcement.step;
    } else if (this.streamStep === null || announcement.step > this.streamStep) {
      this.streamStep = announcement.step;
    }
    this.promotePending();
    const stalenessMs = Math.max(0, (nowMicros - announcement.atMicros) / 1000);
    if (Number.isFinite(stalenessMs)) this.staleness[this.stalenessSamples++ % STALENESS_SAMPLES] = stalenessMs;
    this.invalidations++;
    this.options.onInvalidation?.({ step: announcement.step, keys: announcement.keys === 'all' ? 'all' : announcement.keys.length, stalenessMs });
  }

  /** The subscription is in place and the table was at `step` after it: the (empty) cache may fill from here. */
  activate(step: number): void {
    this.streamStep = this.streamStep === null ? step : Math.max(this.streamStep, step);
    this.active = true;
    this.promotePending();
  }

  /** The subscription was lost: empty the cache and stop using it. */
  deactivate(): void {
    this.active = false;
    this.streamStep = null;
    this.epoch++;
    this.entries.clear();
    this.dropPending();
  }

  /** Read-your-writes: answer nothing until the stream has reached `step` (the table's step after a barrier). */
  raiseFloor(step: number): void {
    if (step > this.floorStep) this.floorStep = step;
  }

  /** Counters, occupancy and staleness percentiles. */
  stats(): NearCacheStats {
    const samples = Math.min(this.stalenessSamples, STALENESS_SAMPLES);
    let staleness: NearCacheStats['staleness'] = null;
    if (samples > 0) {
      const sorted = this.staleness.slice(0, samples).sort();
      const at = (q: number) => sorted[Math.min(samples - 1, Math.floor(q * samples))]!;
      staleness = { p50: at(0.5), p99: at(0.99), max: sorted[samples - 1]!, samples };
    }
    return {
      hits: this.hits,
      misses: this.misses,
      bypasses: this.bypasses,
      records: this.entries.size,
      bytes: this.entries.calculatedSize ?? 0,
      active: this.active,
      streamStep: this.streamStep,
      invalidations: this.invalidations,
      staleness,
    };
  }

  private entry(field: string, record: R | undefined, encodedSize: number): NearCacheEntry<R> {
    return { record, size: encodedSize + field.length + ENTRY_OVERHEAD_BYTES };
  }

  /** Moves values read at the step the stream just reached into the cache; drops those the stream has passed. */
  private promotePending(): void {
    if (this.pendingCount === 0 || !this.active) return;
    const streamStep = this.streamStep!;
    for (const [step, waiting] of this.pending) {
      if (step > streamStep) continue;
      this.pending.delete(step);
      this.pendingCount -= waiting.length;
      if (step === streamStep && step >= this.floorStep) for (const [field, entry] of waiting) this.entries.set(field, entry);
    }
  }

  private dropPending(): void {
    this.pending.clear();
    this.pendingCount = 0;
  }
}

/**
 * Freezes a record and what it holds: cached records are shared by every
 * caller, so a caller's change must fail instead of altering what others
 * read. Binary values (Buffer, typed arrays) cannot be frozen and stay as
 * they are.
 */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value)) return value;
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
  return value;
}
