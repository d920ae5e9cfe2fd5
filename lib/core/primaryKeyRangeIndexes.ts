import { QueryArgsDbRecordsSpec } from './dbAccess.ts';
import { InvalidArgumentError } from './errors.ts';
import { Adjustment, IndexSpec, Indexes } from './indexes.ts';
import { Interval, type Score } from './interval.ts';
import { StorageRecordsSpec } from './storageRecordsSpec.ts';
import type { Coverage } from './storageTable.ts';

const INDEX_NAME = 'primary_key';

/** A spec of {@link PrimaryKeyRangeIndexes}: the numeric primary keys in `[ge, lt)`. */
export class PrimaryKeyRangeSpec extends IndexSpec {
  constructor(
    indexName: string,
    readonly interval: Interval,
  ) {
    super(indexName);
  }

  override toString(): string {
    return `records with primary keys in ${this.interval}`;
  }
}

/** The adjustment of {@link PrimaryKeyRangeIndexes}, carrying the range it establishes. */
export class PrimaryKeyRangeAdjustment<R> extends Adjustment<R> {
  constructor(
    expireSpec: StorageRecordsSpec<R> | null,
    loadSpec: QueryArgsDbRecordsSpec<R> | null,
    readonly interval: Interval,
  ) {
    super(expireSpec, loadSpec);
  }
}

/**
 * Indexes with one index, `primary_key`, over a numeric primary key that is
 * also the score; loads and queries ranges `[ge, lt)`. An adjustment expires
 * the whole current range and loads the whole new one.
 *
 * @example
 * ```ts
 * const indexes = new PrimaryKeyRangeIndexes((r) => r.id, 'SELECT * FROM t WHERE id >= $1 AND id < $2');
 * await table.load('primary_key', { ge: 0, lt: 1000 });
 * ```
 */
export class PrimaryKeyRangeIndexes<R> extends Indexes<R, number, PrimaryKeyRangeSpec, [range: { ge: number; lt: number }]> {
  readonly indexNames = [INDEX_NAME] as const;
  private covered = new Interval(0, 0);

  /**
   * @param extractPrimaryKey - reads the numeric primary key from a record.
   * @param queryRange - selects the records with `$1 <= key < $2`.
   */
  constructor(
    private readonly extractPrimaryKey: (record: R) => number,
    private readonly queryRange: string,
  ) {
    super();
  }

  createSpec(indexName: string, range: { ge: number; lt: number }): PrimaryKeyRangeSpec {
    if (indexName !== INDEX_NAME) {
      throw new InvalidArgumentError(`PrimaryKeyRangeIndexes has only the index "${INDEX_NAME}", not "${indexName}".`);
    }
    if (typeof range !== 'object' || range === null) {
      throw new InvalidArgumentError('PrimaryKeyRangeIndexes specs take a range { ge, lt } after the index name.');
    }
    return new PrimaryKeyRangeSpec(indexName, new Interval(range.ge, range.lt));
  }

  score(indexName: string, record: R): Score {
    if (indexName !== INDEX_NAME) {
      throw new InvalidArgumentError(`PrimaryKeyRangeIndexes has only the index "${INDEX_NAME}", not "${indexName}".`);
    }
    return this.primaryKey(record);
  }

  primaryKey(record: R): number {
    return this.extractPrimaryKey(record);
  }

  storageRecordsSpec(spec: PrimaryKeyRangeSpec): StorageRecordsSpec<R> {
    return new StorageRecordsSpec<R>(INDEX_NAME, [spec.interval]);
  }

  dbRecordsSpec(spec: PrimaryKeyRangeSpec): QueryArgsDbRecordsSpec<R> {
    return new QueryArgsDbRecordsSpec<R>(this.queryRange, [spec.interval.ge, spec.interval.lt]);
  }

  prepareAdjustment(spec: PrimaryKeyRangeSpec): PrimaryKeyRangeAdjustment<R> {
    const expireSpec = this.covered.isEmpty ? null : new StorageRecordsSpec<R>(INDEX_NAME, [this.covered]);
    return new PrimaryKeyRangeAdjustment(expireSpec, this.dbRecordsSpec(spec), spec.interval);
  }

  commitAdjustment(adjustment: PrimaryKeyRangeAdjustment<R>): void {
    this.covered = adjustment.interval;
  }

  covers(spec: PrimaryKeyRangeSpec): boolean {
    return this.covered.covers(spec.interval);
  }

  override coverage(): Coverage {
    return { [INDEX_NAME]: this.covered.isEmpty ? [] : [this.covered] };
  }
}
