import type { Redis } from 'ioredis';
import { InvalidArgumentError, TablecacheError } from '../core/errors.ts';
import { DEFAULT_KEY_PREFIX } from '../redis/keyLayout.ts';
import { toTablecacheError } from '../redis/redisErrors.ts';

/**
 * The read-your-writes barrier, waiting side: the daemon sets the mark of a
 * barrier once it has applied every change committed before the barrier's
 * NOTIFY (`sendBarrier` in tablecache/postgres), and {@link waitForBarrier}
 * waits for that mark. Redis only: no Postgres here.
 */

/** How long the daemon keeps a barrier mark: long enough for any waiter, short enough to leave nothing behind. */
export const BARRIER_MARK_TTL_MS = 60_000;

/**
 * The Redis key of a barrier's mark: `{<keyPrefix>}barrier:<id>`. The hash
 * tag keeps it under the same ACL key pattern as the tables (`{<keyPrefix>*`),
 * so a read-only reader may wait on it; no table key has this shape, since
 * table names are never empty.
 */
export function barrierMarkKey(keyPrefix: string, id: string): string {
  return `{${keyPrefix}}barrier:${id}`;
}

/**
 * The Redis key where the daemon lists the tables a barrier still waits
 * for: `{<keyPrefix>}barrier-behind:<id>`, a JSON array of
 * {@link BarrierBehindTable}, written while the barrier waits on a table
 * that is slow or failing (same TTL as the mark).
 */
export function barrierBehindKey(keyPrefix: string, id: string): string {
  return `{${keyPrefix}}barrier-behind:${id}`;
}

/** One table a barrier still waits for, as the daemon wrote it under {@link barrierBehindKey}. */
export interface BarrierBehindTable {
  readonly table: string;
  /** Why, when the table's last step failed (the error's message); absent while its step is merely running. */
  readonly reason?: string;
}

/** A barrier's mark did not appear in time (code `TC_TIMEOUT`). */
export class BarrierTimeoutError extends TablecacheError {
  /**
   * @param behindTables The tables the daemon reported the barrier still waits for (empty when it reported none:
   * it is down, listens elsewhere, or no table had finished a step since the barrier arrived).
   */
  constructor(
    readonly barrierId: string,
    readonly timeoutMs: number,
    readonly behindTables: readonly BarrierBehindTable[] = [],
  ) {
    super(
      'TC_TIMEOUT',
      behindTables.length > 0
        ? `Barrier ${barrierId} was not reached within ${timeoutMs} ms: the daemon has not applied it to table(s) ` +
            `${behindTables.map(({ table, reason }) => (reason === undefined ? `${table} (its step is still running)` : `${table} (failing: ${reason})`)).join(', ')}. ` +
            'Read from Postgres instead, or wait longer.'
        : `Barrier ${barrierId} was not reached within ${timeoutMs} ms: the daemon is behind, down, or listens on another channel or key prefix. ` +
            'Read from Postgres instead, or wait longer.',
    );
  }
}

/** Reads the daemon's list of tables a barrier waits for; empty when there is none or it cannot be read. */
async function readBehindTables(redis: Redis, keyPrefix: string, id: string): Promise<BarrierBehindTable[]> {
  try {
    const text = await redis.get(barrierBehindKey(keyPrefix, id));
    if (text === null) return [];
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null || typeof (entry as { table?: unknown }).table !== 'string') return [];
      const { table, reason } = entry as { table: string; reason?: unknown };
      return [typeof reason === 'string' ? { table, reason } : { table }];
    });
  } catch {
    // The timeout is the error to report; this list only explains it.
    return [];
  }
}

/** Options of {@link waitForBarrier}. */
export interface WaitForBarrierOptions {
  /** The key prefix the daemon writes under (`redis.keyPrefix` of its config; default `tablecache:`). */
  readonly keyPrefix?: string;
  /** How long to wait (default 5,000 ms). */
  readonly timeoutMs?: number;
  /** Stops the wait; it then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** What {@link waitForBarrier} needs of a reader with a near-cache. */
interface NearCachedReader {
  readonly keyPrefix: string;
  /** Reads the table's step and keeps the near-cache from answering until its change stream has reached it. */
  raiseFloor(): Promise<void>;
}

/** The open readers with a near-cache in this process: a barrier must reach their caches too. */
const nearCachedReaders = new Set<NearCachedReader>();

/** @internal Called by a reader that opens a near-cache; returns the function that unregisters it. */
export function registerNearCachedReader(reader: NearCachedReader): () => void {
  nearCachedReaders.add(reader);
  return () => nearCachedReaders.delete(reader);
}

const FIRST_POLL_MS = 0.5;
const MAX_POLL_MS = 20;

/**
 * Resolves once the daemon has marked barrier `id` done, i.e. every change
 * committed before `sendBarrier` returned is visible to readers.
 *
 * Readers with a near-cache in this process (same key prefix) are included:
 * after the mark, each reads its table's step (one read each) and answers
 * nothing from its near-cache until its change stream has reached that
 * step, so a read after this returns never comes from before the barrier.
 *
 * Polls the mark, starting at half a millisecond and backing off to 20 ms,
 * so a reached barrier is seen within about a millisecond while a slow
 * daemon costs few round trips; the caller's connection is never blocked.
 *
 * @throws {@link BarrierTimeoutError} (`TC_TIMEOUT`) when the mark does not appear within `timeoutMs`; its message and
 * `behindTables` name the tables the daemon reported the barrier still waits for (a slow or failing table).
 * @throws {@link InvalidArgumentError} for a non-positive timeout.
 */
export async function waitForBarrier(redis: Redis, id: string, options: WaitForBarrierOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  if (!(timeoutMs > 0)) throw new InvalidArgumentError(`timeoutMs must be a positive number of ms, got ${timeoutMs}.`);
  const key = barrierMarkKey(options.keyPrefix ?? DEFAULT_KEY_PREFIX, id);
  const deadline = performance.now() + timeoutMs;
  for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, MAX_POLL_MS)) {
    options.signal?.throwIfAborted();
    let marked: number;
    try {
      marked = await redis.exists(key);
    } catch (error) {
      throw toTablecacheError(error, `waiting for barrier ${id}`);
    }
    if (marked === 1) {
      const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
      await Promise.all([...nearCachedReaders].filter((reader) => reader.keyPrefix === keyPrefix).map((reader) => reader.raiseFloor()));
      return;
    }
    const left = deadline - performance.now();
    if (left <= 0) throw new BarrierTimeoutError(id, timeoutMs, await readBehindTables(redis, options.keyPrefix ?? DEFAULT_KEY_PREFIX, id));
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}
