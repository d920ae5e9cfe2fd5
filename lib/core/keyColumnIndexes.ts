import { QueryArgsDbRecordsSpec, type RecordParser } from './dbAccess.ts';
import { InvalidArgumentError, UnsupportedIndexOperationError } from './errors.ts';
import { Adjustment, IndexSpec, Indexes } from './indexes.ts';
import { Interval, nextScoreAfter, type Score } from './interval.ts';
import { primaryKeyScore } from './primaryKeyScore.ts';
import { StorageRecordsSpec } from './storageRecordsSpec.ts';
import type { Coverage, PrimaryKey } from './storageTable.ts';

/** The name of the primary-key index of {@link KeyColumnIndexes}. */
export const PRIMARY_KEY_INDEX = 'primary_key';

/**
 * The score of a record whose lookup column is NULL. No canonical key scores
 * -Infinity (they are finite numbers or hashes), so NULLs never share a score
 * with a real value, and a NULL never matches any spec.
 */
export const NULL_KEY_SCORE: Score = -Infinity;

const CANONICAL_INTEGER = /^(0|-?[1-9][0-9]*)$/;

/**
 * The canonical form of one key value, the same whichever way the value
 * arrived: a change payload carries JSON (`bigint` and `numeric` columns as
 * strings, `int4` as numbers), while records read through `PostgresAccess`
 * have `int8` as `bigint` and `numeric` as strings (docs/postgres-types.md).
 *
 * - an integer (number, bigint, or a string of canonical decimal digits such
 *   as `"12"`, never `"012"` or `"-0"`) becomes a number when it is a safe
 *   integer, a bigint otherwise: `"12"`, `12n` and `12` are all `12`;
 * - any other finite number stays itself (`-0` becomes `0`);
 * - any other string stays itself (`"1.50"`, a uuid, a name);
 * - a boolean becomes `"true"` or `"false"`;
 * - `null` and `undefined` become `null` (a NULL key matches nothing).
 *
 * The mapping is one-to-one within one column type (a column never mixes
 * `12` and `"12"`), and the Redis field of a canonical key
 * (`primaryKeyField`) is its plain text, so readers in any language can name
 * records by `"12"`.
 *
 * @throws {@link InvalidArgumentError} for NaN or ±Infinity, and for values that are not a number, bigint, string or
 *   boolean (a `Date`, a `Buffer`, an object): such key columns are not supported; cast them to text in the query.
 * @example
 * ```ts
 * canonicalKeyValue('12') === canonicalKeyValue(12n); // true: both are 12
 * ```
 */
export function canonicalKeyValue(value: unknown): PrimaryKey | null {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidArgumentError(`A key value must be a finite number, got ${value}.`);
      return Object.is(value, -0) ? 0 : value;
    case 'bigint':
      return Number.MIN_SAFE_INTEGER <= value && value <= Number.MAX_SAFE_INTEGER ? Number(value) : value;
    case 'string':
      return CANONICAL_INTEGER.test(value) ? canonicalKeyValue(BigInt(value)) : value;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return null;
      break;
  }
  const kind = value instanceof Date ? 'a Date' : Buffer.isBuffer(value) ? 'a Buffer' : Array.isArray(value) ? 'an array' : typeof value;
  throw new InvalidArgumentError(
    `A key value must be an integer, numeric, text, uuid or boolean value, got ${kind}. ` +
      'Cast such a key column to text in the query (and in the source key) to use it as a key.',
  );
}

/** The text of a canonical key value: what Redis uses as the field, and what composite keys are built from. */
function canonicalText(value: PrimaryKey): string {
  return typeof value === 'string' ? value : value.toString();
}

/**
 * The canonical key of a tuple of key values (one per key column), or `null`
 * when any value is NULL. One column: {@link canonicalKeyValue} of the value.
 * Several columns: the JSON array of each value's canonical text, e.g. `[12, 'a']`
 * becomes `'["12","a"]'`, so a composite key is one string with one score and
 * one Redis field.
 *
 * @throws {@link InvalidArgumentError} as {@link canonicalKeyValue} does.
 */
export function canonicalKey(values: readonly unknown[]): PrimaryKey | null {
  if (values.length === 1) return canonicalKeyValue(values[0]);
  const texts: string[] = [];
  for (const value of values) {
    const canonical = canonicalKeyValue(value);
    if (canonical === null) return null;
    texts.push(canonicalText(canonical));
  }
  return JSON.stringify(texts);
}

/** The score of a canonical key in a {@link KeyColumnIndexes} index: {@link primaryKeyScore}, or {@link NULL_KEY_SCORE}. */
export function keyColumnScore(key: PrimaryKey | null): Score {
  return key === null ? NULL_KEY_SCORE : primaryKeyScore(key);
}

/** SQL identifier quoting: double quotes, embedded ones doubled, so no column name is ever read as SQL. */
function quoteColumn(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A spec of {@link KeyColumnIndexes}: the records whose columns of one index
 * hold one of `keys` (canonical, distinct, never NULL), or every record.
 */
export class KeyColumnSpec extends IndexSpec {
  constructor(
    indexName: string,
    /** Distinct canonical keys, each with its per-column canonical values. */
    readonly keys: ReadonlyMap<PrimaryKey, readonly PrimaryKey[]>,
    readonly all: boolean,
  ) {
    super(indexName);
  }

  override toString(): string {
    if (this.all) return 'all records';
    const shown = [...this.keys.keys()].slice(0, 10).map(String).join(', ');
    const more = this.keys.size > 10 ? ` and ${this.keys.size - 10} more` : '';
    return `records with ${this.indexName} ${shown}${more}`;
  }
}

/** A key as `createSpec` takes it: a value for a one-column index, an array of values for a composite one. */
export type KeyColumnInput = string | number | bigint | boolean | null | readonly unknown[];

/** Arguments of a {@link KeyColumnIndexes} spec after the index name: keys, or `{ all: true }`. */
export type KeyColumnSpecArgs = KeyColumnInput[] | [options: { all: true }];

/** Options of {@link KeyColumnIndexes}. */
export interface KeyColumnIndexesOptions<R> {
  /** The cached table's query, selecting every record; run without parameters. */
  readonly query: string;
  /** The columns of the primary key (one, or several for a composite key). */
  readonly primaryKey: readonly string[];
  /**
   * Column lists to find records by besides the primary key (the `match`
   * columns of the daemon's config), each becoming an index named by
   * {@link KeyColumnIndexes.indexNameFor}. A list equal to the primary key is the
   * `primary_key` index itself.
   */
  readonly lookups?: readonly (readonly string[])[];
  /** Turns database rows into records (default: the row as it is). */
  readonly recordParser?: RecordParser<R>;
}

interface IndexColumns {
  readonly name: string;
  readonly columns: readonly string[];
}

/**
 * Indexes for a table that caches its whole query: an index `primary_key`
 * and one index per lookup column list, each answering "the records whose
 * columns equal one of these keys". Made for the daemon, which finds the
 * cached records a source change affects by their primary key or by a
 * `match` column, and refreshes exactly those.
 *
 * Keys are normalised by {@link canonicalKey} on both sides (specs and
 * records), so a payload key `"12"` finds the record whose key is `12n`. A
 * key's score is {@link primaryKeyScore} of its canonical key; a NULL lookup
 * value scores {@link NULL_KEY_SCORE} and never matches. Reads recheck the
 * actual values, so colliding scores cost only a comparison.
 *
 * The database read of a spec wraps the query:
 * `SELECT * FROM (<query>) AS "cached" WHERE "cached"."col" = ANY($1)`, one
 * array parameter per column. For a composite index every column gets its own
 * `= ANY`, which selects a superset of the spec's records (each column's
 * value appears among the keys, though perhaps not in the same key); for a
 * table that caches its whole query the extra records are current rows, so
 * refreshing them is harmless, and the planner can use an index on the
 * columns.
 *
 * Coverage is always everything: the only load (and adjustment) is the whole
 * query, `{ all: true }`.
 *
 * @throws {@link InvalidArgumentError} from the constructor for an empty primary key, an empty lookup, or two indexes with one name.
 * @example
 * ```ts
 * const indexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'], lookups: [['city_id']] });
 * const table = new CachedTable(indexes, db, storage);
 * await table.load('primary_key', { all: true });
 * table.invalidateRecords([indexes.createSpec('city_id', 5)], [indexes.createSpec('city_id', 5)]);
 * await table.refreshInvalid();
 * ```
 */
export class KeyColumnIndexes<R extends Record<string, unknown> = Record<string, unknown>> extends Indexes<
  R,
  PrimaryKey,
  KeyColumnSpec,
  KeyColumnSpecArgs
> {
  readonly indexNames: readonly string[];
  /** The cached table's query. */
  readonly query: string;
  /** The primary-key columns. */
  readonly primaryKeyColumns: readonly string[];
  private readonly byName: ReadonlyMap<string, IndexColumns>;
  private readonly recordParser: RecordParser<R> | undefined;

  constructor(options: KeyColumnIndexesOptions<R>) {
    super();
    if (options.primaryKey.length === 0) throw new InvalidArgumentError('KeyColumnIndexes needs at least one primary-key column.');
    this.query = options.query;
    this.primaryKeyColumns = [...options.primaryKey];
    this.recordParser = options.recordParser;
    const byName = new Map<string, IndexColumns>([[PRIMARY_KEY_INDEX, { name: PRIMARY_KEY_INDEX, columns: this.primaryKeyColumns }]]);
    for (const columns of options.lookups ?? []) {
      if (columns.length === 0) throw new InvalidArgumentError('A lookup of KeyColumnIndexes names no column; give at least one.');
      const name = this.indexNameFor(columns);
      const existing = byName.get(name);
      if (existing === undefined) byName.set(name, { name, columns: [...columns] });
      else if (!sameColumns(existing.columns, columns)) {
        throw new InvalidArgumentError(
          `The lookup on ${JSON.stringify(columns)} would be named "${name}", which is already the index of ${JSON.stringify(existing.columns)}; rename a column in the query.`,
        );
      }
    }
    this.byName = byName;
    this.indexNames = [...byName.keys()];
  }

  /**
   * The name of the index over `columns`: `primary_key` when they are the
   * primary-key columns, else the column names joined by `,` (`city_id`,
   * `country,zip`).
   */
  indexNameFor(columns: readonly string[]): string {
    return sameColumns(columns, this.primaryKeyColumns) ? PRIMARY_KEY_INDEX : columns.join(',');
  }

  /** The columns of an index. @throws {@link InvalidArgumentError} for an unknown index. */
  columnsOf(indexName: string): readonly string[] {
    return this.index(indexName).columns;
  }

  /**
   * Builds a spec. For a one-column index each argument is a value; for a
   * composite index each is an array with one value per column. NULL keys
   * are dropped (they match nothing), duplicates are merged. `{ all: true }`
   * alone names every record.
   *
   * @throws {@link InvalidArgumentError} for an unknown index, a key of the wrong arity, or an unsupported value.
   */
  createSpec(indexName: string, ...args: KeyColumnSpecArgs): KeyColumnSpec {
    const index = this.index(indexName);
    const [first] = args;
    if (args.length === 1 && isAllOption(first)) return new KeyColumnSpec(indexName, new Map(), true);
    const composite = index.columns.length > 1;
    const tuples = (args as KeyColumnInput[]).map((arg) => {
      if (composite !== Array.isArray(arg)) {
        throw new InvalidArgumentError(
          composite
            ? `Index "${indexName}" has ${index.columns.length} columns (${index.columns.join(', ')}); give each key as an array of ${index.columns.length} values, got ${String(arg)}.`
            : `Index "${indexName}" has one column; give each key as a value, got an array. To select every record pass { all: true } alone.`,
        );
      }
      return composite ? (arg as readonly unknown[]) : [arg];
    });
    return this.keySpec(indexName, tuples);
  }

  /**
   * A spec from key tuples (one value per column of the index, in order), as
   * the daemon extracts them from change payloads.
   *
   * @throws {@link InvalidArgumentError} for an unknown index, a tuple of the wrong length, or an unsupported value.
   */
  keySpec(indexName: string, tuples: Iterable<readonly unknown[]>): KeyColumnSpec {
    const index = this.index(indexName);
    const keys = new Map<PrimaryKey, readonly PrimaryKey[]>();
    for (const tuple of tuples) {
      if (tuple.length !== index.columns.length) {
        throw new InvalidArgumentError(`A key of index "${indexName}" needs ${index.columns.length} value(s) (${index.columns.join(', ')}), got ${tuple.length}.`);
      }
      const parts = tuple.map(canonicalKeyValue);
      if (parts.some((part) => part === null)) continue;
      const key = canonicalKey(parts);
      if (key !== null) keys.set(key, parts as PrimaryKey[]);
    }
    return new KeyColumnSpec(indexName, keys, false);
  }

  score(indexName: string, record: R): Score {
    const index = this.index(indexName);
    if (index.name === PRIMARY_KEY_INDEX) return primaryKeyScore(this.primaryKey(record));
    return keyColumnScore(this.recordKey(index, record));
  }

  /**
   * The record's canonical primary key.
   *
   * @throws {@link InvalidArgumentError} when a primary-key column is missing from the record or NULL.
   */
  primaryKey(record: R): PrimaryKey {
    const key = this.recordKey(this.index(PRIMARY_KEY_INDEX), record);
    if (key === null) {
      throw new InvalidArgumentError(`A record has a NULL primary key (${this.primaryKeyColumns.join(', ')}); every cached record needs one.`);
    }
    return key;
  }

  storageRecordsSpec(spec: KeyColumnSpec): StorageRecordsSpec<R> {
    if (spec.all) return new StorageRecordsSpec<R>(spec.indexName, [Interval.everything()]);
    const index = this.index(spec.indexName);
    const scores = new Set<Score>();
    for (const key of spec.keys.keys()) scores.add(keyColumnScore(key));
    const recheck = (record: R): boolean => {
      const key = this.recordKey(index, record);
      return key !== null && spec.keys.has(key);
    };
    // The spec's keys are canonical, as primaryKey(record) returns them: exactly the records a primary-key spec selects.
    const primaryKeys = index.name === PRIMARY_KEY_INDEX ? [...spec.keys.keys()] : undefined;
    return new StorageRecordsSpec<R>(spec.indexName, keyIntervals(scores), recheck, primaryKeys);
  }

  dbRecordsSpec(spec: KeyColumnSpec): QueryArgsDbRecordsSpec<R> {
    if (spec.all) return new QueryArgsDbRecordsSpec<R>(this.query, [], this.recordParser);
    const index = this.index(spec.indexName);
    // Canonical text parameters: Postgres reads the array in the column's own
    // type (`col = ANY($1)` types $1 as the column's array type).
    const valuesPerColumn = index.columns.map((_, position) => [...new Set([...spec.keys.values()].map((parts) => canonicalText(parts[position]!)))]);
    const conditions = index.columns.map((column, position) => `"cached".${quoteColumn(column)} = ANY($${position + 1})`);
    const query = `SELECT * FROM (${this.query}) AS "cached" WHERE ${conditions.join(' AND ')}`;
    return new QueryArgsDbRecordsSpec<R>(query, valuesPerColumn, this.recordParser);
  }

  /**
   * The whole query is the only thing this Indexes loads.
   *
   * @throws {@link UnsupportedIndexOperationError} for any spec but `{ all: true }`.
   */
  prepareAdjustment(spec: KeyColumnSpec): Adjustment<R> {
    if (!spec.all) {
      throw new UnsupportedIndexOperationError(`KeyColumnIndexes caches the whole query; load or adjust with { all: true }, not ${spec}.`);
    }
    return new Adjustment<R>(null, new QueryArgsDbRecordsSpec<R>(this.query, [], this.recordParser));
  }

  commitAdjustment(_adjustment: Adjustment<R>): void {}

  covers(_spec: KeyColumnSpec): boolean {
    return true;
  }

  override coverage(): Coverage {
    return Object.fromEntries(this.indexNames.map((name) => [name, [Interval.everything()]]));
  }

  private index(indexName: string): IndexColumns {
    const index = this.byName.get(indexName);
    if (index === undefined) {
      throw new InvalidArgumentError(`KeyColumnIndexes has no index "${indexName}"; its indexes are ${this.indexNames.join(', ')}.`);
    }
    return index;
  }

  private recordKey(index: IndexColumns, record: R): PrimaryKey | null {
    const values = index.columns.map((column) => {
      if (!(column in record)) {
        throw new InvalidArgumentError(
          `A record has no column "${column}" (index "${index.name}"); the query must select it. Its columns are ${Object.keys(record).join(', ')}.`,
        );
      }
      return record[column];
    });
    return canonicalKey(values);
  }
}

/**
 * Intervals holding exactly the given scores, except that a run of
 * consecutive integers (keys 1, 2, 3, …) becomes one interval `[1, 4)`: a
 * storage reads it in one range instead of one per key, and the recheck on
 * the actual value drops any other record whose score lies in between.
 */
function keyIntervals(scores: ReadonlySet<Score>): Interval[] {
  const sorted = [...scores].sort((a, b) => a - b);
  const intervals: Interval[] = [];
  for (let start = 0; start < sorted.length; ) {
    let end = start;
    while (end + 1 < sorted.length && Number.isSafeInteger(sorted[end]!) && sorted[end + 1] === sorted[end]! + 1) end++;
    const last = sorted[end]!;
    // The next score may be a fraction below last + 1; intervals must not overlap.
    const next = sorted[end + 1] ?? Infinity;
    intervals.push(new Interval(sorted[start]!, end > start && next >= last + 1 ? last + 1 : nextScoreAfter(last)));
    start = end + 1;
  }
  return intervals;
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column, position) => column === b[position]);
}

function isAllOption(value: unknown): value is { all: true } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if ((value as { all?: unknown }).all !== true) {
    throw new InvalidArgumentError('Pass keys, or { all: true } alone; got an object without all: true.');
  }
  return true;
}
