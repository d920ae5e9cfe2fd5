/** Turns a row as the database driver returns it into the record the cache stores. */
export type RecordParser<R> = (row: Record<string, unknown>) => R;

/**
 * Which records to read from the database: a query and its positional
 * parameters (`$1`, `$2`, …), with an optional parser applied to every row.
 *
 * @example
 * ```ts
 * new QueryArgsDbRecordsSpec('SELECT * FROM users WHERE user_id = ANY($1)', [[1, 2]]);
 * ```
 */
export class QueryArgsDbRecordsSpec<R = Record<string, unknown>> {
  constructor(
    readonly query: string,
    readonly args: readonly unknown[],
    readonly recordParser?: RecordParser<R>,
  ) {}

  toString(): string {
    return `a query with ${this.args.length} argument(s)`;
  }
}

/** The database specs a {@link DbAccess} understands. */
export type DbRecordsSpec<R> = QueryArgsDbRecordsSpec<R>;

/**
 * Read access to the source of truth.
 *
 * Implementations stream: a large result must not become one array.
 */
export interface DbAccess {
  /** Iterates over the records the spec selects, each passed through its parser. */
  getRecords<R>(spec: DbRecordsSpec<R>): AsyncIterable<R>;
}
