import type { CoverageUpdate, PrimaryKey, StorageTable } from '../lib/core/storageTable.ts';
import type { StorageRecordsSpec } from '../lib/core/storageRecordsSpec.ts';

/**
 * The live data of a table, taken over as it is: a `CachedTable` "loads"
 * through it without touching the storage (no clear, nothing put, nothing
 * published), so that it stands loaded over the records a previous daemon
 * published; every later refresh goes to the storage itself. Used when the
 * logical change source resumes a table from its saved position instead of
 * reloading it.
 */
export class ResumedStorage<R> implements StorageTable<R> {
  /** The storage's own, when it has one: a refresh by primary key then deletes without reading first. */
  readonly scratchDiscardPrimaryKeys?: (keys: readonly PrimaryKey[]) => Promise<void>;

  constructor(private readonly storage: StorageTable<R>) {
    const discard = storage.scratchDiscardPrimaryKeys;
    if (discard !== undefined) this.scratchDiscardPrimaryKeys = (keys) => discard.call(storage, keys);
  }

  get name(): string {
    return this.storage.name;
  }

  /** The records stay: they are the state the saved position describes. */
  async clear(): Promise<void> {}

  /** The resuming "load" reads no rows (its database access has none). */
  async putRecords(): Promise<number> {
    return 0;
  }

  /** Already published by the daemon that wrote it. */
  async markLoaded(): Promise<void> {}

  getRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    return this.storage.getRecords(spec);
  }

  deleteRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    return this.storage.deleteRecords(spec);
  }

  scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    return this.storage.scratchPutRecords(records);
  }

  scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    return this.storage.scratchDiscardRecords(spec);
  }

  scratchMerge(update?: CoverageUpdate): Promise<void> {
    return this.storage.scratchMerge(update);
  }

  scratchReset(): Promise<void> {
    return this.storage.scratchReset();
  }
}
