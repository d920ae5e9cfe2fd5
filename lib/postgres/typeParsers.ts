import pg from 'pg';
import { parse as parseArrayLiteral } from 'postgres-array';

// Type OIDs are fixed in Postgres' catalog (pg_type.dat) and never change.
const INT8 = 20;
const INT8_ARRAY = 1016;
const NUMERIC = 1700;
const NUMERIC_ARRAY = 1231;

type TextParser = (value: string) => unknown;

const keepText: TextParser = (value) => value;

const exactTextParsers: ReadonlyMap<number, TextParser> = new Map<number, TextParser>([
  // pg's default returns int8 as a string; a JS number would round above 2^53.
  [INT8, (value) => BigInt(value)],
  [INT8_ARRAY, (value) => parseArrayLiteral(value, (entry) => BigInt(entry))],
  // pg's default keeps numeric as a string but parses numeric[] with
  // parseFloat, which rounds; both stay exact strings here.
  [NUMERIC, keepText],
  [NUMERIC_ARRAY, (value) => parseArrayLiteral(value, keepText)],
]);

/**
 * The column type mapping {@link PostgresAccess} reads with: exact for every
 * number, pg's defaults otherwise.
 *
 * | Postgres type                  | JavaScript value                                   |
 * |--------------------------------|----------------------------------------------------|
 * | `int8` / `bigint`, `int8[]`    | `bigint`, `bigint[]` (always, whatever the size)   |
 * | `numeric`, `numeric[]`         | `string`, `string[]` (exact decimal text)          |
 * | `int2`, `int4`, `float4/8`     | `number`                                           |
 * | `timestamptz`, `timestamp`, `date` | `Date` (milliseconds; microseconds are cut)    |
 * | `bytea`                        | `Buffer`                                           |
 * | `json`, `jsonb`                | parsed value                                       |
 * | other arrays                   | arrays of the element mapping                      |
 * | anything else                  | pg's default (usually the text form)               |
 *
 * It is a per-query `types` object: the process-global `pg.types` is never
 * changed, so other code using `pg` is unaffected. Types not listed above use
 * whatever `pg.types` returns, i.e. pg's defaults unless the application
 * changed them globally. Pass it to your own queries to read the same values:
 *
 * @example
 * ```ts
 * const { rows } = await pool.query({ text: 'SELECT 9007199254740993::int8 AS n', types: exactTypeParsers });
 * rows[0].n === 9007199254740993n; // true
 * ```
 */
export const exactTypeParsers: pg.CustomTypesConfig = {
  getTypeParser(oid, format) {
    // pg-cursor and pg only request text results unless told otherwise; binary
    // results keep pg's parsers.
    const exact = format === 'binary' ? undefined : exactTextParsers.get(oid);
    return exact ?? pg.types.getTypeParser(oid, format);
  },
};
