import type { DbRecordsSpec } from './dbAccess.ts';
import type { Score } from './interval.ts';
import type { StorageRecordsSpec } from './storageRecordsSpec.ts';
import type { Coverage, PrimaryKey, RecordScorer } from './storageTable.ts';

/**
 * A set of records named by one index. Each {@link Indexes} implementation
 * defines its own subclass carrying the parameters (keys, bounds, …).
 */
export class IndexSpec {
  constructor(readonly indexName: string) {}

  toString(): string {
    return `records of index ${this.indexName}`;
  }
}

/**
 * A change to the set of cached records: which records to expire from storage
 * and which to load from the database (either may be absent).
 *
 * While the change is applied, every expired record is passed to
 * `observeExpired` and every loaded one to `observeLoaded`, so that an
 * Indexes implementation can keep whatever bookkeeping it needs. Subclasses
 * carry the target state that `commitAdjustment` installs.
 */
export class Adjustment<R> {
  constructor(
    readonly expireSpec: StorageRecordsSpec<R> | null,
    readonly loadSpec: DbRecordsSpec<R> | null,
  ) {}

  /** Called with each record removed from storage. The same record may later be observed loaded. */
  observeExpired(_record: R): void {}

  /** Called with each record put into storage, possibly more than once per record. */
  observeLoaded(_record: R): void {}

  toString(): string {
    return `adjustment expiring ${this.expireSpec ?? 'nothing'} and loading ${this.loadSpec ?? 'nothing'}`;
  }
}

/**
 * Ties storage and database together: turns an {@link IndexSpec} into a way to
 * read those records from storage or from the database, scores records, and
 * keeps track of which records storage holds (changed only through
 * `prepareAdjustment` / `commitAdjustment`).
 *
 * `covers`, `prepareAdjustment` and `storageRecordsSpec` may be unsupported
 * for some index; they then throw {@link UnsupportedIndexOperationError}. An
 * index that supports `covers` also supports `storageRecordsSpec`.
 *
 * `A` is the tuple of arguments `createSpec` takes after the index name; the
 * {@link CachedTable} methods accept either a spec or `(indexName, ...A)`.
 */
export abstract class Indexes<R, PK extends PrimaryKey = PrimaryKey, S extends IndexSpec = IndexSpec, A extends unknown[] = unknown[]>
  implements RecordScorer<R, PK>
{
  /** Names of all indexes; never empty. */
  abstract readonly indexNames: readonly string[];

  /** The record's score in `indexName`. */
  abstract score(indexName: string, record: R): Score;

  /** The record's primary key. */
  abstract primaryKey(record: R): PK;

  /**
   * Builds a spec from an index name and the implementation's arguments.
   *
   * @throws {@link InvalidArgumentError} when the index does not exist or the arguments do not fit it.
   */
  abstract createSpec(indexName: string, ...args: A): S;

  /** The same records, as a storage read. */
  abstract storageRecordsSpec(spec: S): StorageRecordsSpec<R>;

  /** The same records, as a database read. */
  abstract dbRecordsSpec(spec: S): DbRecordsSpec<R>;

  /** What to expire and load so that exactly the records of `spec` are cached. Does not change state. */
  abstract prepareAdjustment(spec: S): Adjustment<R>;

  /** Installs the state an adjustment from `prepareAdjustment` produced, once it has been applied. */
  abstract commitAdjustment(adjustment: Adjustment<R>): void;

  /**
   * Whether storage holds every record of `spec`. May answer `false` when
   * unsure; a record that does not exist at all may count as covered.
   */
  abstract covers(spec: S): boolean;

  /**
   * The current coverage as score intervals per index, for readers in other
   * processes. `null` (the default) when this implementation cannot say.
   */
  coverage(): Coverage | null {
    return null;
  }

  /** Whether `value` is a spec (rather than an index name). */
  isSpec(value: unknown): value is S {
    return value instanceof IndexSpec;
  }
}

/** Any Indexes, whatever its type parameters. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyIndexes<R> = Indexes<R, any, any, any>;
