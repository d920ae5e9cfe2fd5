import type { DbAccess } from './dbAccess.ts';
import {
  AlreadyLoadedError,
  InvalidArgumentError,
  NotCoveredError,
  NotLoadedError,
  RecordNotFoundError,
  UnsupportedIndexOperationError,
} from './errors.ts';
import type { Adjustment, IndexSpec, Indexes } from './indexes.ts';
import { InvalidRecordRepository, type TakenBatch } from './invalidRecordRepository.ts';
import { silentLogger, type Logger } from './logger.ts';
import { AsyncMutex, ReadWriteLock } from './readWriteLock.ts';
import { observingLoaded, readingAhead } from './recordIterables.ts';
import type { StorageRecordsSpec } from './storageRecordsSpec.ts';
import type { PrimaryKey, StorageTable } from './storageTable.ts';

/** A spec, or an index name followed by the arguments the Indexes' `createSpec` takes. */
export type SpecInput<S extends IndexSpec, A extends unknown[]> = [spec: S] | [indexName: string, ...args: A];

/** Options of {@link CachedTable.invalidateRecords}. */
export interface InvalidateOptions {
  /**
   * Whether the next read of an invalidated record refreshes first (default
   * `true`). With `false` the old records keep being served until
   * {@link CachedTable.refreshInvalid} runs.
   */
  readonly forceRefreshOnNextRead?: boolean;
}

/** Options of a {@link CachedTable}. */
export interface CachedTableOptions {
  /** Where load, adjust and refresh are logged (a pino logger fits). */
  readonly logger?: Logger;
}

/** What a finished load, adjustment or refresh did. */
export interface ChangeCounts {
  /**
   * Records deleted from storage. A refresh that deletes by primary key
   * without reading (`scratchDiscardPrimaryKeys`) counts every key it was
   * given, whether or not storage held a record for it.
   */
  readonly expired: number;
  /** Records loaded from the database into storage. */
  readonly loaded: number;
}

type LoadState = 'unloaded' | 'loading' | 'loaded';

/** Where {@link CachedTable}'s adjustment routine writes: straight to storage, or to its scratch space. */
interface AdjustmentWrites<R> {
  expire(spec: StorageRecordsSpec<R>): AsyncIterable<R>;
  put(records: AsyncIterable<R>): Promise<number>;
}

/**
 * A cached table: serves sets of records from fast storage when the storage
 * covers them and they are valid, and from the database otherwise.
 *
 * Reads wait until {@link load} has finished. Changes in the database become
 * visible only through {@link invalidateRecords} (then the next read of those
 * records, or {@link refreshInvalid}, fetches them again) and {@link adjust}
 * (which changes what is cached). Adjustments and refreshes are staged in the
 * storage's scratch space one at a time and merged atomically: a read sees the
 * whole state before a step or the whole state after it, never a mix.
 *
 * Methods that name records take a spec built by the Indexes, or an index
 * name and the Indexes' arguments: `table.getRecords('primary_key', 1, 2)`.
 *
 * @example
 * ```ts
 * const table = new CachedTable(indexes, new PostgresAccess({ connectionString }), new LocalStorageTable(indexes));
 * await table.load('primary_key', { all: true });
 * const user = await table.getFirstRecord('primary_key', 1);
 * ```
 */
export class CachedTable<R, PK extends PrimaryKey, S extends IndexSpec, A extends unknown[]> {
  private loadState: LoadState = 'unloaded';
  private readonly loadedSignal: Promise<void>;
  private signalLoaded!: () => void;
  private readonly invalidRecords: InvalidRecordRepository<S>;
  private readonly scratchLock = new AsyncMutex();
  private readonly stateLock = new ReadWriteLock();
  private readonly logger: Logger;

  constructor(
    readonly indexes: Indexes<R, PK, S, A>,
    private readonly dbAccess: DbAccess,
    readonly storage: StorageTable<R>,
    options: CachedTableOptions = {},
  ) {
    this.loadedSignal = new Promise((resolve) => {
      this.signalLoaded = resolve;
    });
    this.invalidRecords = new InvalidRecordRepository<S>(indexes.indexNames, (spec) => indexes.storageRecordsSpec(spec));
    this.logger = options.logger ?? silentLogger;
  }

  /** Whether the initial load has finished. */
  get isLoaded(): boolean {
    return this.loadState === 'loaded';
  }

  /** Resolves once the initial load has finished (e.g. for a readiness check). */
  loaded(): Promise<void> {
    return this.loadedSignal;
  }

  /**
   * Clears storage and loads the records the spec names, straight into
   * storage (not through scratch space). Reads are enabled afterwards.
   *
   * @throws {@link AlreadyLoadedError} when the table is loaded or loading (use {@link adjust}).
   * @throws {@link UnsupportedIndexOperationError} when the index cannot be adjusted by.
   */
  async load(...input: SpecInput<S, A>): Promise<ChangeCounts> {
    const spec = this.toSpec(input);
    if (this.loadState !== 'unloaded') {
      throw new AlreadyLoadedError(`Table "${this.storage.name}" is already ${this.loadState}; use adjust() to change which records are cached.`);
    }
    this.loadState = 'loading';
    try {
      const counts = await this.loadUnlocked(spec);
      this.loadState = 'loaded';
      this.signalLoaded();
      return counts;
    } catch (error) {
      this.loadState = 'unloaded';
      throw error;
    }
  }

  private async loadUnlocked(spec: S): Promise<ChangeCounts> {
    const adjustment = this.prepareAdjustment(spec);
    this.logger.info({ table: this.storage.name, spec: String(spec) }, 'load started');
    await this.storage.clear();
    const { expired, loaded } = await this.applyAdjustment(adjustment, {
      expire: (spec) => this.storage.deleteRecords(spec),
      put: (records) => this.storage.putRecords(records),
    });
    this.indexes.commitAdjustment(adjustment);
    await this.storage.markLoaded({ coverage: this.indexes.coverage() });
    this.logger.info({ table: this.storage.name, loaded }, 'load finished');
    return { expired, loaded };
  }

  /**
   * Iterates over the records the spec names: from storage when it covers them
   * (refreshing invalid ones first), else from the database. Nothing happens
   * until the first `next()`; errors surface there.
   *
   * @throws {@link UnsupportedIndexOperationError} when the index does not support coverage checks.
   */
  getRecords(...input: SpecInput<S, A>): AsyncIterable<R> {
    return { [Symbol.asyncIterator]: () => this.recordsIterator(input) };
  }

  /**
   * A plain iterator rather than an async generator: a generator's `yield*`
   * costs several promise hops per record, the largest part of a range read
   * from local storage.
   */
  private recordsIterator(input: SpecInput<S, A>): AsyncIterator<R> {
    let source: Promise<R[] | AsyncIterator<R>> | undefined;
    let position = 0;
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    return {
      next: async () => {
        source ??= this.openRecords(input);
        const records = await source;
        if (!Array.isArray(records)) return records.next();
        return position < records.length ? { done: false, value: records[position++]! } : done;
      },
      return: async () => {
        const records = await source?.catch(() => undefined);
        if (records !== undefined && !Array.isArray(records)) await records.return?.();
        position = Infinity;
        return done;
      },
    };
  }

  private async openRecords(input: SpecInput<S, A>): Promise<R[] | AsyncIterator<R>> {
    const spec = this.toSpec(input);
    await this.loaded();
    let fromStorage = await this.readFromStorage(spec, true);
    if (fromStorage === 'refresh') {
      await this.refreshInvalid();
      fromStorage = await this.readFromStorage(spec, false);
    }
    if (fromStorage !== 'not covered' && fromStorage !== 'refresh') return fromStorage;
    return this.dbAccess.getRecords(this.indexes.dbRecordsSpec(spec))[Symbol.asyncIterator]();
  }

  /**
   * Reads the records from storage under a shared hold, so that no merge can
   * fall between the coverage check and the read. The records are collected
   * before the hold is released: a slow consumer must not hold up merges.
   */
  private readFromStorage(spec: S, checkValidity: boolean): Promise<R[] | 'not covered' | 'refresh'> {
    return this.stateLock.shared(async () => {
      if (!this.indexes.covers(spec)) return 'not covered';
      const recordsSpec = this.indexes.storageRecordsSpec(spec);
      if (checkValidity && recordsSpec.scoreIntervals.some((interval) => this.invalidRecords.intersectsInvalid(recordsSpec.indexName, interval))) {
        return 'refresh';
      }
      const records: R[] = [];
      for await (const record of this.storage.getRecords(recordsSpec)) records.push(record);
      return records;
    });
  }

  /**
   * The first record {@link getRecords} would yield. Records have no defined
   * order, so use it where zero or one record is expected.
   *
   * @throws {@link RecordNotFoundError} when there is none.
   */
  async getFirstRecord(...input: SpecInput<S, A>): Promise<R> {
    const spec = this.toSpec(input);
    for await (const record of this.getRecords(spec)) return record;
    throw new RecordNotFoundError(`No record in table "${this.storage.name}" matches ${spec}.`);
  }

  /**
   * Marks records invalid. `oldSpecs` name them as they are in storage now,
   * `newSpecs` as they are in the database now (often the same specs); each
   * list holds at most one spec per index, and every spec must be covered.
   * The refresh deletes what the first old spec names and loads what the
   * first new spec names. An index missing from either list becomes dirty:
   * every read through it refreshes first.
   *
   * Does not refresh by itself: the next read of an invalid record does
   * (unless `forceRefreshOnNextRead` is false), or {@link refreshInvalid}.
   *
   * @throws {@link NotLoadedError} before the table is loaded.
   * @throws {@link InvalidArgumentError} when a list is empty or names an index twice.
   * @throws {@link NotCoveredError} when a spec is not covered by storage.
   */
  invalidateRecords(oldSpecs: readonly S[], newSpecs: readonly S[], options: InvalidateOptions = {}): void {
    if (this.loadState !== 'loaded') {
      throw new NotLoadedError(`Table "${this.storage.name}" is not loaded yet; invalidate records after load() has finished.`);
    }
    const oldByIndex = this.specsByIndex(oldSpecs, 'old');
    const newByIndex = this.specsByIndex(newSpecs, 'new');
    this.invalidRecords.flagInvalid(oldByIndex, newByIndex, oldSpecs[0]!, newSpecs[0]!, options.forceRefreshOnNextRead ?? true);
  }

  private specsByIndex(specs: readonly S[], which: 'old' | 'new'): Map<string, S> {
    if (specs.length === 0) {
      throw new InvalidArgumentError(`invalidateRecords needs at least one ${which} spec; got an empty list.`);
    }
    const byIndex = new Map<string, S>();
    for (const spec of specs) {
      if (byIndex.has(spec.indexName)) {
        throw new InvalidArgumentError(`Index "${spec.indexName}" is named more than once in the ${which} specs; give one spec per index.`);
      }
      this.assertCovered(spec);
      byIndex.set(spec.indexName, spec);
    }
    return byIndex;
  }

  private assertCovered(spec: S): void {
    let covered: boolean;
    try {
      covered = this.indexes.covers(spec);
    } catch (error) {
      if (!(error instanceof UnsupportedIndexOperationError)) throw error;
      throw new NotCoveredError(`Cannot invalidate ${spec}: index "${spec.indexName}" does not support coverage checks.`);
    }
    if (!covered) {
      throw new NotCoveredError(`Cannot invalidate ${spec}: storage does not cover it. Adjust the table to cover it first, or leave it to the database.`);
    }
  }

  /**
   * Refreshes every invalid record now: deletes them in scratch space, loads
   * them again from the database, and merges. Waits for a running adjustment
   * or refresh; does nothing when no record is invalid.
   */
  async refreshInvalid(): Promise<ChangeCounts> {
    // An invalidation a running refresh has taken is not pending any more but
    // not merged yet either: waiting for the lock waits for that merge.
    if (!this.invalidRecords.hasInvalid) return { expired: 0, loaded: 0 };
    return this.scratchLock.run(() => this.refreshInvalidLocked(null));
  }

  private async refreshInvalidLocked(adjustment: Adjustment<R> | null): Promise<ChangeCounts> {
    const batch = this.invalidRecords.take();
    if (batch === null) return { expired: 0, loaded: 0 };
    try {
      const counts = await this.stageRefresh(batch, adjustment);
      await this.stateLock.exclusive(() => this.storage.scratchMerge());
      this.invalidRecords.complete(batch);
      this.logger.debug({ table: this.storage.name, pairs: batch.pairs.length, ...counts }, 'refresh merged');
      return counts;
    } catch (error) {
      await this.storage.scratchReset();
      this.invalidRecords.restore(batch);
      throw error;
    }
  }

  private async stageRefresh(batch: TakenBatch<S>, adjustment: Adjustment<R> | null): Promise<ChangeCounts> {
    let expired = 0;
    let loaded = 0;
    for (const { oldSpec, newSpec } of batch.pairs) {
      // The database read starts before the discard so that the two round
      // trips overlap; storage does not change meanwhile (the scratch lock).
      const records = readingAhead(this.dbAccess.getRecords(this.indexes.dbRecordsSpec(newSpec)));
      try {
        expired += await this.stageDiscard(this.indexes.storageRecordsSpec(oldSpec), adjustment);
      } catch (error) {
        await records.cancel();
        throw error;
      }
      loaded += await this.storage.scratchPutRecords(adjustment ? observingLoaded(records, adjustment) : records);
    }
    return { expired, loaded };
  }

  /**
   * Stages the deletion of what `spec` selects; returns how many records
   * that counts. A spec of exact primary keys is deleted by key without
   * reading the records, when storage can (for Redis that saves a round
   * trip); an adjustment must see every expired record, so it always reads.
   */
  private async stageDiscard(spec: StorageRecordsSpec<R>, adjustment: Adjustment<R> | null): Promise<number> {
    if (adjustment === null && spec.primaryKeys !== undefined && this.storage.scratchDiscardPrimaryKeys !== undefined) {
      await this.storage.scratchDiscardPrimaryKeys(spec.primaryKeys);
      return spec.primaryKeys.length;
    }
    let expired = 0;
    for await (const record of this.storage.scratchDiscardRecords(spec)) {
      adjustment?.observeExpired(record);
      expired++;
    }
    return expired;
  }

  /**
   * Changes which records are cached to exactly those the spec names:
   * refreshes invalid records first, then stages the expiry and the load in
   * scratch space and merges them in one step, together with the Indexes'
   * new coverage.
   *
   * If staging fails, nothing of it stays staged and the table is as before.
   * If the merge itself fails (storage unreachable), the Indexes already count
   * the adjustment as committed while storage may not: load a new CachedTable.
   *
   * @throws {@link UnsupportedIndexOperationError} when the index cannot be adjusted by.
   */
  async adjust(...input: SpecInput<S, A>): Promise<ChangeCounts> {
    const spec = this.toSpec(input);
    await this.loaded();
    return this.scratchLock.run(async () => {
      const adjustment = this.prepareAdjustment(spec);
      await this.refreshInvalidLocked(adjustment);
      let counts: ChangeCounts;
      try {
        counts = await this.applyAdjustment(adjustment, {
          expire: (spec) => this.storage.scratchDiscardRecords(spec),
          put: (records) => this.storage.scratchPutRecords(records),
        });
      } catch (error) {
        // Whatever was staged belongs to an adjustment that will never be
        // committed; the next merge must not publish it.
        await this.storage.scratchReset();
        throw error;
      }
      await this.stateLock.exclusive(async () => {
        this.indexes.commitAdjustment(adjustment);
        await this.storage.scratchMerge({ coverage: this.indexes.coverage() });
      });
      this.logger.info({ table: this.storage.name, adjustment: String(adjustment), ...counts }, 'adjustment merged');
      return counts;
    });
  }

  /**
   * Expires and loads what the adjustment names, showing the Indexes every
   * record on the way. The one routine behind a load (straight into storage)
   * and an adjustment (staged in scratch space): only the writes differ.
   */
  private async applyAdjustment(adjustment: Adjustment<R>, writes: AdjustmentWrites<R>): Promise<ChangeCounts> {
    let expired = 0;
    if (adjustment.expireSpec) {
      for await (const record of writes.expire(adjustment.expireSpec)) {
        adjustment.observeExpired(record);
        expired++;
      }
    }
    const loaded = adjustment.loadSpec ? await writes.put(observingLoaded(this.dbAccess.getRecords(adjustment.loadSpec), adjustment)) : 0;
    return { expired, loaded };
  }

  private prepareAdjustment(spec: S): Adjustment<R> {
    try {
      return this.indexes.prepareAdjustment(spec);
    } catch (error) {
      if (!(error instanceof UnsupportedIndexOperationError)) throw error;
      throw new UnsupportedIndexOperationError(`The Indexes of table "${this.storage.name}" cannot adjust by index "${spec.indexName}": ${error.message}`);
    }
  }

  private toSpec(input: SpecInput<S, A>): S {
    const [first, ...rest] = input;
    if (input.length === 1 && this.indexes.isSpec(first)) return first;
    if (typeof first !== 'string') {
      throw new InvalidArgumentError(`Expected an index spec or an index name (one of ${this.indexes.indexNames.join(', ')}), got ${typeof first}.`);
    }
    return this.indexes.createSpec(first, ...(rest as A));
  }
}
