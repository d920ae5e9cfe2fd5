import { QueryArgsDbRecordsSpec } from './dbAccess.ts';
import { InvalidArgumentError } from './errors.ts';
import { Adjustment, IndexSpec, Indexes } from './indexes.ts';
import { Interval, type Score } from './interval.ts';
import { StorageRecordsSpec, type RecheckPredicate } from './storageRecordsSpec.ts';
import type { Coverage, PrimaryKey } from './storageTable.ts';

/** A spec of {@link AllIndexes}: every record, optionally filtered. */
export class AllIndexSpec<R> extends IndexSpec {
  constructor(
    indexName: string,
    readonly recheckPredicate?: RecheckPredicate<R>,
  ) {
    super(indexName);
  }

  override toString(): string {
    return this.recheckPredicate ? 'all records matching a predicate' : 'all records';
  }
}

/**
 * Options of an {@link AllIndexes} spec. Every spec of these Indexes names
 * every record, so `{ all: true }`, the spelling every Indexes shares for
 * "all records", may be given but changes nothing.
 */
export interface AllIndexSpecOptions<R> {
  /** Every record (always so here); accepted for the same spelling as the other Indexes. */
  readonly all?: true;
  /** Filters records read from storage (the database query is not filtered). */
  readonly recheck?: RecheckPredicate<R>;
}

/**
 * The simplest Indexes: one index, `all`, and every operation means every
 * record. Every record scores 0.
 *
 * @example
 * ```ts
 * const indexes = new AllIndexes((r) => r.id, 'SELECT * FROM t');
 * await table.load('all'); // or table.load('all', { all: true })
 * ```
 */
export class AllIndexes<R, PK extends PrimaryKey = PrimaryKey> extends Indexes<
  R,
  PK,
  AllIndexSpec<R>,
  [options?: AllIndexSpecOptions<R>]
> {
  readonly indexNames = ['all'] as const;

  constructor(
    private readonly extractPrimaryKey: (record: R) => PK,
    private readonly queryAll: string,
  ) {
    super();
  }

  createSpec(indexName: string, options: AllIndexSpecOptions<R> = {}): AllIndexSpec<R> {
    if (indexName !== 'all') {
      throw new InvalidArgumentError(`AllIndexes has only the index "all", not "${indexName}".`);
    }
    if (options.all !== undefined && options.all !== true) {
      throw new InvalidArgumentError(`AllIndexes specs always name every record: all must be true or left out, got ${String(options.all)}.`);
    }
    return new AllIndexSpec(indexName, options.recheck);
  }

  score(indexName: string, _record: R): Score {
    if (indexName !== 'all') {
      throw new InvalidArgumentError(`AllIndexes has only the index "all", not "${indexName}".`);
    }
    return 0;
  }

  primaryKey(record: R): PK {
    return this.extractPrimaryKey(record);
  }

  storageRecordsSpec(spec: AllIndexSpec<R>): StorageRecordsSpec<R> {
    return new StorageRecordsSpec('all', [Interval.everything()], spec.recheckPredicate);
  }

  dbRecordsSpec(_spec: AllIndexSpec<R>): QueryArgsDbRecordsSpec<R> {
    return new QueryArgsDbRecordsSpec<R>(this.queryAll, []);
  }

  prepareAdjustment(_spec: AllIndexSpec<R>): Adjustment<R> {
    return new Adjustment<R>(null, new QueryArgsDbRecordsSpec<R>(this.queryAll, []));
  }

  commitAdjustment(_adjustment: Adjustment<R>): void {}

  covers(_spec: AllIndexSpec<R>): boolean {
    return true;
  }

  override coverage(): Coverage {
    return { all: [Interval.everything()] };
  }
}
