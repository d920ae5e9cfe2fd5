import { QueryArgsDbRecordsSpec } from './dbAccess.ts';
import { InvalidArgumentError } from './errors.ts';
import { Adjustment, IndexSpec, Indexes } from './indexes.ts';
import { Interval, type Score } from './interval.ts';
import { primaryKeyScore } from './primaryKeyScore.ts';
import { StorageRecordsSpec } from './storageRecordsSpec.ts';
import type { Coverage, PrimaryKey } from './storageTable.ts';

const INDEX_NAME = 'primary_key';

/** A spec of {@link PrimaryKeyIndexes}: some primary keys, or all of them. */
export class PrimaryKeySpec<PK extends PrimaryKey> extends IndexSpec {
  constructor(
    indexName: string,
    readonly primaryKeys: readonly PK[],
    /** Whether the spec names every record (`primaryKeys` is then empty). */
    readonly all: boolean,
  ) {
    super(indexName);
  }

  /** @deprecated Use {@link PrimaryKeySpec.all}; the same value. */
  get allPrimaryKeys(): boolean {
    return this.all;
  }

  override toString(): string {
    if (this.all) return 'all records';
    const shown = this.primaryKeys.slice(0, 10).map(String).join(', ');
    const more = this.primaryKeys.length > 10 ? ` and ${this.primaryKeys.length - 10} more` : '';
    return `records with primary keys ${shown}${more}`;
  }
}

/**
 * Arguments of a {@link PrimaryKeyIndexes} spec after the index name: keys,
 * or `{ all: true }` for every record, the spelling every Indexes shares.
 * `{ allPrimaryKeys: true }` is a deprecated alias of `{ all: true }`: it
 * still works, and will go in a future major version.
 */
export type PrimaryKeySpecArgs<PK extends PrimaryKey> = PK[] | [options: { all: true }] | [options: AllPrimaryKeysOption];

/** @deprecated The old spelling of `{ all: true }`: use that. */
export interface AllPrimaryKeysOption {
  /** @deprecated Use `{ all: true }`. */
  readonly allPrimaryKeys: true;
}

/** The adjustment of {@link PrimaryKeyIndexes}, carrying the key set it establishes. */
export class PrimaryKeyAdjustment<R, PK extends PrimaryKey> extends Adjustment<R> {
  constructor(
    expireSpec: StorageRecordsSpec<R> | null,
    loadSpec: QueryArgsDbRecordsSpec<R> | null,
    readonly primaryKeys: ReadonlySet<PK>,
    readonly coverAll: boolean,
  ) {
    super(expireSpec, loadSpec);
  }
}

/**
 * Indexes with one index, `primary_key`, that load and query either every
 * record or a set of primary keys. A key's score is {@link primaryKeyScore}.
 *
 * Simple rather than fast for key sets: every key becomes its own score
 * interval and the loaded key set is kept in memory.
 *
 * @example
 * ```ts
 * const indexes = new PrimaryKeyIndexes((r) => r.user_id, queryAll, `${queryAll} WHERE user_id = ANY ($1)`);
 * await table.load('primary_key', { all: true });
 * for await (const user of table.getRecords('primary_key', 1, 2)) console.log(user);
 * ```
 */
export class PrimaryKeyIndexes<R, PK extends PrimaryKey = PrimaryKey> extends Indexes<
  R,
  PK,
  PrimaryKeySpec<PK>,
  PrimaryKeySpecArgs<PK>
> {
  readonly indexNames = [INDEX_NAME] as const;
  private coveredKeys: ReadonlySet<PK> = new Set();
  private coversAll = false;

  /**
   * @param extractPrimaryKey - reads the primary key from a record.
   * @param queryAll - selects every record; run without parameters.
   * @param querySome - selects the records whose key is in the array `$1` (e.g. `WHERE id = ANY ($1)`).
   */
  constructor(
    private readonly extractPrimaryKey: (record: R) => PK,
    private readonly queryAll: string,
    private readonly querySome: string,
  ) {
    super();
  }

  createSpec(indexName: string, ...args: PrimaryKeySpecArgs<PK>): PrimaryKeySpec<PK> {
    assertIndexName(indexName);
    const [first] = args;
    if (args.length === 1 && typeof first === 'object' && first !== null) {
      // `allPrimaryKeys` is the deprecated spelling of `all`; either names every record.
      const { all, allPrimaryKeys } = first as { all?: unknown; allPrimaryKeys?: unknown };
      if (all !== true && allPrimaryKeys !== true) {
        throw new InvalidArgumentError(`Pass primary keys, or { all: true } alone; got an object with ${describeObject(first)} instead.`);
      }
      return new PrimaryKeySpec<PK>(indexName, [], true);
    }
    for (const key of args) {
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'bigint') {
        throw new InvalidArgumentError(
          `Primary keys must be strings, numbers or bigints, got ${typeof key}. To select every record pass { all: true } alone.`,
        );
      }
    }
    return new PrimaryKeySpec(indexName, args as PK[], false);
  }

  score(indexName: string, record: R): Score {
    assertIndexName(indexName);
    return primaryKeyScore(this.primaryKey(record));
  }

  primaryKey(record: R): PK {
    return this.extractPrimaryKey(record);
  }

  storageRecordsSpec(spec: PrimaryKeySpec<PK>): StorageRecordsSpec<R> {
    if (spec.all) return new StorageRecordsSpec<R>(INDEX_NAME, [Interval.everything()]);
    const keys = new Set(spec.primaryKeys);
    // The recheck compares primaryKey(record) with the keys themselves, so the spec selects exactly these keys.
    return new StorageRecordsSpec<R>(INDEX_NAME, keyIntervals(keys), (record) => keys.has(this.primaryKey(record)), [...keys]);
  }

  dbRecordsSpec(spec: PrimaryKeySpec<PK>): QueryArgsDbRecordsSpec<R> {
    if (spec.all) return new QueryArgsDbRecordsSpec<R>(this.queryAll, []);
    return new QueryArgsDbRecordsSpec<R>(this.querySome, [[...new Set(spec.primaryKeys)]]);
  }

  prepareAdjustment(spec: PrimaryKeySpec<PK>): PrimaryKeyAdjustment<R, PK> {
    const wanted = new Set(spec.primaryKeys);
    const expireSpec = this.expireSpecFor(spec, wanted);
    const loadSpec = this.loadSpecFor(spec, wanted);
    return new PrimaryKeyAdjustment(expireSpec, loadSpec, wanted, spec.all);
  }

  private expireSpecFor(spec: PrimaryKeySpec<PK>, wanted: ReadonlySet<PK>): StorageRecordsSpec<R> | null {
    if (spec.all) return null;
    if (this.coversAll) {
      return new StorageRecordsSpec<R>(INDEX_NAME, [Interval.everything()], (record) => !wanted.has(this.primaryKey(record)));
    }
    const expired = new Set([...this.coveredKeys].filter((key) => !wanted.has(key)));
    if (expired.size === 0) return null;
    return new StorageRecordsSpec<R>(INDEX_NAME, keyIntervals(expired), (record) => expired.has(this.primaryKey(record)));
  }

  private loadSpecFor(spec: PrimaryKeySpec<PK>, wanted: ReadonlySet<PK>): QueryArgsDbRecordsSpec<R> | null {
    if (spec.all) return this.coversAll ? null : new QueryArgsDbRecordsSpec<R>(this.queryAll, []);
    const added = this.coversAll ? [] : [...wanted].filter((key) => !this.coveredKeys.has(key));
    if (added.length === 0) return null;
    return new QueryArgsDbRecordsSpec<R>(this.querySome, [added]);
  }

  commitAdjustment(adjustment: PrimaryKeyAdjustment<R, PK>): void {
    this.coveredKeys = adjustment.primaryKeys;
    this.coversAll = adjustment.coverAll;
  }

  covers(spec: PrimaryKeySpec<PK>): boolean {
    if (this.coversAll) return true;
    if (spec.all) return false;
    return spec.primaryKeys.every((key) => this.coveredKeys.has(key));
  }

  override coverage(): Coverage {
    if (this.coversAll) return { [INDEX_NAME]: [Interval.everything()] };
    return { [INDEX_NAME]: keyIntervals(this.coveredKeys) };
  }
}

function assertIndexName(indexName: string): void {
  if (indexName !== INDEX_NAME) {
    throw new InvalidArgumentError(`PrimaryKeyIndexes has only the index "${INDEX_NAME}", not "${indexName}".`);
  }
}

/** One interval per distinct key score, so that colliding keys never make overlapping intervals. */
function keyIntervals<PK extends PrimaryKey>(keys: Iterable<PK>): Interval[] {
  const scores = new Set<Score>();
  for (const key of keys) scores.add(primaryKeyScore(key));
  return [...scores].sort((a, b) => a - b).map((score) => Interval.onlyContaining(score));
}

/** The keys of an object given where `{ all: true }` was expected, for the error message. */
function describeObject(value: object): string {
  const keys = Object.keys(value);
  return keys.length === 0 ? 'no keys' : `the keys ${keys.join(', ')}`;
}
