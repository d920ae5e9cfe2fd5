import type { Interval, Score } from './interval.ts';
import type { StorageRecordsSpec } from './storageRecordsSpec.ts';

/** A primary key: what identifies one cached record. Composite keys are encoded by the caller (e.g. as a string). */
export type PrimaryKey = string | number | bigint;

/**
 * What a storage needs to know about records: their primary key and their
 * score in every index. Usually implemented by an {@link Indexes}.
 */
export interface RecordScorer<R, PK extends PrimaryKey = PrimaryKey> {
  /** Names of all indexes; never empty. */
  readonly indexNames: readonly string[];
  /** The record's score in `indexName`. Throws for an unknown index name. */
  score(indexName: string, record: R): Score;
  /** The record's primary key. Throws when it is missing. */
  primaryKey(record: R): PK;
}

/**
 * Which scores of each index the storage holds completely, as the
 * {@link Indexes} know it. Published by the writer so that readers in other
 * processes can tell "not cached" from "does not exist".
 */
export type Coverage = Readonly<Record<string, readonly Interval[]>>;

/**
 * What changes in the published metadata when scratch space is merged: the new
 * coverage, or `null` when the Indexes cannot describe their coverage.
 */
export interface CoverageUpdate {
  readonly coverage: Coverage | null;
}

/**
 * Fast storage for cached records, with one sorted index per index name.
 *
 * Writes go either straight to the table (`putRecords`, `deleteRecords`, used
 * only by the initial load) or through scratch space (`scratchPutRecords`,
 * `scratchDiscardRecords`), where they stay invisible to every reader until
 * `scratchMerge` makes all of them visible in one atomic step.
 *
 * Record iterables passed in are consumed by the storage, which is free to
 * batch and pipeline them.
 */
export interface StorageTable<R> {
  /** A name for the table (used in logs, metrics and storage keys). */
  readonly name: string;

  /** Deletes every record and the scratch space. */
  clear(): Promise<void>;

  /** Stores records, replacing those with the same primary key. Resolves to how many were stored. */
  putRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number>;

  /** Iterates over the records the spec selects, each once, in no particular order. */
  getRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R>;

  /** Deletes the records `getRecords(spec)` would return, yielding each as it was stored. Must be consumed. */
  deleteRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R>;

  /** Stages records in scratch space; invisible to reads until `scratchMerge`. */
  scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number>;

  /**
   * Stages the deletion of the records `getRecords(spec)` returns now,
   * yielding each. They stay readable until `scratchMerge`. A record staged
   * for deletion and later put again in scratch space survives the merge.
   */
  scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R>;

  /**
   * Stages the deletion of the records with these primary keys (as
   * `primaryKey(record)` returns them) without reading them; a key without a
   * record is ignored. Like {@link scratchDiscardRecords} of a spec that
   * selects exactly these keys: they stay readable until `scratchMerge`,
   * staged puts of these keys are withdrawn, and a record put again later in
   * the session survives the merge. Optional: a storage without it is
   * refreshed through `scratchDiscardRecords`.
   */
  scratchDiscardPrimaryKeys?(keys: readonly PrimaryKey[]): Promise<void>;

  /**
   * Makes everything staged in scratch space visible in one atomic step, with
   * the coverage update (if given) published in the same step.
   */
  scratchMerge(update?: CoverageUpdate): Promise<void>;

  /** Drops everything staged in scratch space since the last merge; the table stays as it is. */
  scratchReset(): Promise<void>;

  /** Publishes that the initial load is complete, with the coverage it established. */
  markLoaded(update: CoverageUpdate): Promise<void>;
}
