import { randomUUID } from 'node:crypto';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { InvalidArgumentError } from '../core/errors.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { Coverage, CoverageUpdate, PrimaryKey, RecordScorer, StorageTable } from '../core/storageTable.ts';
import { AS_GIVEN, IndexedRecords, type StoredForm } from './indexedRecords.ts';

/**
 * Turns a record into a string and back, for a {@link LocalStorageTable}
 * that holds records encoded ({@link MessagePackStringCodec} is one).
 * `decode(encode(record))` must equal `record`; `encode` may throw
 * {@link InvalidArgumentError} for a record it cannot hold.
 */
export interface LocalRecordCodec<R> {
  encode(record: R): string;
  decode(encoded: string): R;
}

/** Options of a {@link LocalStorageTable}. */
export interface LocalStorageTableOptions<R = unknown> {
  /** Name used in logs and metrics; a random UUID when absent. */
  readonly tableName?: string;
  /**
   * Hold every record encoded by this codec, and decode on every read,
   * instead of holding the instances that were put. Trades read speed for
   * memory: see {@link LocalStorageTable}.
   */
  readonly recordCodec?: LocalRecordCodec<R>;
}

/**
 * What a {@link LocalStorageTable} last published through `markLoaded` and
 * `scratchMerge`. Nothing in-process needs it; it mirrors what a shared
 * storage makes visible to readers in other processes.
 */
export interface LocalPublishedState {
  /** Whether `markLoaded` was called since construction or the last `clear`. */
  readonly loaded: boolean;
  /** The last coverage published, or `null` when none (or an unknown one) was. */
  readonly coverage: Coverage | null;
}

const NOTHING_PUBLISHED: LocalPublishedState = { loaded: false, coverage: null };

/**
 * Direct writes hand the event loop back after this many records, so that a
 * million-record load from an in-memory array does not stall every other
 * task of the process for its whole duration.
 */
const RECORDS_PER_TICK = 10_000;

function isAsyncIterable<R>(records: AsyncIterable<R> | Iterable<R>): records is AsyncIterable<R> {
  return Symbol.asyncIterator in records;
}

/**
 * Calls `store` with each record as it arrives, holding no batch: in a table
 * that holds records encoded, a row is garbage as soon as it is stored, and
 * garbage that dies young is never copied into (and never grows) the old
 * generation. Before each record, waits as long as `untilWritable` returns a
 * promise; every {@link RECORDS_PER_TICK} records, hands the event loop a
 * macrotask turn.
 */
async function storeEach<R>(
  records: AsyncIterable<R> | Iterable<R>,
  store: (record: R) => void,
  untilWritable: () => Promise<void> | undefined,
): Promise<number> {
  let count = 0;
  if (isAsyncIterable(records)) {
    for await (const record of records) {
      for (let wait = untilWritable(); wait !== undefined; wait = untilWritable()) await wait;
      store(record);
      if (++count % RECORDS_PER_TICK === 0) await nextMacrotask();
    }
    return count;
  }
  // A plain for-of: `for await` over a sync iterable costs a promise per record.
  for (const record of records) {
    for (let wait = untilWritable(); wait !== undefined; wait = untilWritable()) await wait;
    store(record);
    if (++count % RECORDS_PER_TICK === 0) await nextMacrotask();
  }
  return count;
}

/**
 * An async iterable over an array computed synchronously at the first
 * `next()`: whatever the consumer awaits between items, the items come from
 * one state of the table. Cheaper per item than an async generator.
 */
function snapshotIterable<T>(collect: () => readonly T[]): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let items: readonly T[] | undefined;
      let position = 0;
      return {
        next(): Promise<IteratorResult<T>> {
          try {
            items ??= collect();
          } catch (error) {
            return Promise.reject(error);
          }
          if (position >= items.length) return Promise.resolve({ value: undefined, done: true });
          return Promise.resolve({ value: items[position++]!, done: false });
        },
        return(): Promise<IteratorResult<T>> {
          position = Infinity;
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
}

/**
 * A {@link StorageTable} in the process's memory: one B+ tree
 * (`sorted-btree`) per index keyed by score (records sharing a score share a
 * slot), and one map per index from primary key to score. Inserts cost
 * O(log n); a range read costs O(log n) plus what it returns.
 *
 * Records are held as given by default: stored and returned as the same
 * instances (do not mutate a stored record). With a `recordCodec` (such as
 * {@link MessagePackStringCodec}) each record is held encoded and decoded on
 * every read: a read returns a new object each time, and mutating the object
 * that was put changes nothing. The trade-off, measured on the seed join's
 * rows (1,000,000 rows of ~104 bytes of JSON; bench/localLoad.bench.ts):
 *
 * | held       | heap after load | peak RSS growth during the load | reads through CachedTable |
 * |------------|-----------------|---------------------------------|---------------------------|
 * | as given   | 2.1× the JSON   | ~2.5× the JSON                  | baseline                  |
 * | encoded    | 1.0× the JSON   | ~1.6× the JSON                  | point reads ~10% slower, 100-row ranges ~35% slower |
 *
 * As given, the pg row objects alone already take 1.6× their JSON size.
 *
 * Scratch space: staged puts and discards are invisible until
 * `scratchMerge`, which applies them synchronously within one tick, so no read
 * sees half a merge; its cost is proportional to what was staged, not to the
 * table. `getRecords` snapshots the selected records at its first `next()`,
 * so a consumer that iterates slowly across a merge still sees one state.
 *
 * While a scratch session is open (anything staged and not yet merged or
 * cleared), `putRecords` and `deleteRecords` wait for the merge before they
 * touch the table, so direct writes never interleave with staged ones.
 *
 * The scorer must be pure: a record's scores are computed once when it is
 * stored and reused to remove it.
 *
 * @example
 * ```ts
 * const storage = new LocalStorageTable(indexes, { tableName: 'users' });
 * await storage.putRecords(rows);
 * await storage.markLoaded({ coverage: indexes.coverage() });
 * for await (const user of storage.getRecords(indexes.storageRecordsSpec(spec))) …
 * ```
 */
export class LocalStorageTable<R, PK extends PrimaryKey = PrimaryKey> implements StorageTable<R> {
  /** The table's name (informational). */
  readonly name: string;
  readonly #table: IndexedRecords<R, PK, unknown>;
  readonly #stagedPuts: IndexedRecords<R, PK, unknown>;
  readonly #stagedDiscards = new Set<PK>();
  #published: LocalPublishedState = NOTHING_PUBLISHED;
  #scratchClosed: { promise: Promise<void>; resolve: () => void } | undefined;

  /**
   * @param scorer Gives each record's primary key and its score in every index (usually the {@link Indexes}).
   * @param options `tableName`, and `recordCodec` to hold records encoded.
   * @throws {@link InvalidArgumentError} when the scorer names no index.
   */
  constructor(scorer: RecordScorer<R, PK>, { tableName, recordCodec }: LocalStorageTableOptions<R> = {}) {
    if (scorer.indexNames.length === 0) {
      throw new InvalidArgumentError('A LocalStorageTable needs a record scorer with at least one index name; got none.');
    }
    this.name = tableName ?? randomUUID();
    const form: StoredForm<R, unknown> = recordCodec ?? AS_GIVEN;
    this.#table = new IndexedRecords(scorer, form);
    this.#stagedPuts = new IndexedRecords(scorer, form);
  }

  /** How many records reads can see (staged changes not included). */
  get size(): number {
    return this.#table.size;
  }

  /** The load state and coverage last published by `markLoaded` / `scratchMerge`. */
  get published(): LocalPublishedState {
    return this.#published;
  }

  /** Deletes every record and everything staged, forgets what was published, and releases waiting writers. */
  async clear(): Promise<void> {
    this.#table.clear();
    this.#stagedPuts.clear();
    this.#stagedDiscards.clear();
    this.#published = NOTHING_PUBLISHED;
    this.#releaseWritersIfScratchClosed();
  }

  /**
   * Stores records, replacing those with the same primary key; waits first
   * while a scratch session is open.
   *
   * @throws {@link InvalidArgumentError} when a record's score is NaN or not a
   *   number, or the record codec rejects the record; records before it in the
   *   iterable stay stored.
   */
  putRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    return storeEach(
      records,
      (record) => this.#table.put(record),
      () => (this.#scratchIsOpen ? this.#untilScratchClosed() : undefined),
    );
  }

  /**
   * Iterates over the records `spec` selects, as of the first `next()`.
   *
   * @throws {@link InvalidArgumentError} (on the first `next()`) when the spec names an unknown index.
   */
  getRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    return snapshotIterable(() => this.#table.select(spec));
  }

  /**
   * Deletes the records `spec` selects, all at once on the first `next()`
   * (after waiting while a scratch session is open), then yields them.
   *
   * @throws {@link InvalidArgumentError} when the spec names an unknown index.
   */
  async *deleteRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    await this.#untilScratchClosed();
    const deleted = this.#table.selectWithKeys(spec);
    for (const { pk } of deleted) this.#table.remove(pk);
    for (const { record } of deleted) yield record;
  }

  /**
   * Stages records to be stored by the next merge; a later staged record
   * replaces an earlier one with the same primary key, and a staged put undoes
   * a staged discard of its primary key.
   *
   * @throws {@link InvalidArgumentError} when a record's score is NaN or not a
   *   number, or the record codec rejects the record; records before it stay staged.
   */
  scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    return storeEach(
      records,
      (record) => this.#stagedDiscards.delete(this.#stagedPuts.put(record)),
      () => undefined,
    );
  }

  /**
   * On the first `next()`, unstages the staged puts `spec` selects and stages
   * the deletion of the stored records it selects; then yields the latter,
   * which stay readable until the merge.
   *
   * @throws {@link InvalidArgumentError} when the spec names an unknown index.
   */
  async *scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    for (const { pk } of this.#stagedPuts.selectWithKeys(spec)) this.#stagedPuts.remove(pk);
    const discarded = this.#table.selectWithKeys(spec);
    for (const { pk } of discarded) this.#stagedDiscards.add(pk);
    this.#releaseWritersIfScratchClosed();
    for (const { record } of discarded) yield record;
  }

  /**
   * Unstages the staged puts of these primary keys and stages the deletion
   * of the stored records with them (a key without a record is ignored),
   * without selecting through an index: O(keys).
   */
  async scratchDiscardPrimaryKeys(keys: readonly PrimaryKey[]): Promise<void> {
    // The keys are what primaryKey(record) returns, so they are this table's PK.
    for (const pk of keys as readonly PK[]) {
      this.#stagedPuts.remove(pk);
      if (this.#table.has(pk)) this.#stagedDiscards.add(pk);
    }
    this.#releaseWritersIfScratchClosed();
  }

  /**
   * Applies everything staged in one synchronous step, O(staged × log n), and
   * records the coverage update; then releases waiting writers.
   */
  async scratchMerge(update?: CoverageUpdate): Promise<void> {
    for (const pk of this.#stagedDiscards.keys()) this.#table.remove(pk);
    this.#table.putAll(this.#stagedPuts);
    this.#stagedDiscards.clear();
    this.#stagedPuts.clear();
    if (update !== undefined) this.#published = { ...this.#published, coverage: update.coverage };
    this.#releaseWritersIfScratchClosed();
  }

  /** Drops everything staged since the last merge and releases waiting writers. */
  async scratchReset(): Promise<void> {
    this.#stagedDiscards.clear();
    this.#stagedPuts.clear();
    this.#releaseWritersIfScratchClosed();
  }

  /** Records that the load is complete, with its coverage (see {@link LocalStorageTable.published}). */
  async markLoaded(update: CoverageUpdate): Promise<void> {
    this.#published = { loaded: true, coverage: update.coverage };
  }

  get #scratchIsOpen(): boolean {
    return this.#stagedPuts.size > 0 || this.#stagedDiscards.size > 0;
  }

  async #untilScratchClosed(): Promise<void> {
    while (this.#scratchIsOpen) {
      this.#scratchClosed ??= signal();
      await this.#scratchClosed.promise;
    }
  }

  #releaseWritersIfScratchClosed(): void {
    if (this.#scratchIsOpen || this.#scratchClosed === undefined) return;
    this.#scratchClosed.resolve();
    this.#scratchClosed = undefined;
  }
}

function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
