import { InvalidArgumentError } from '../core/errors.ts';
import { canonicalKey } from '../core/keyColumnIndexes.ts';
import type { PrimaryKey } from '../core/storageTable.ts';
import { primaryKeyField } from '../redis/keyLayout.ts';

/**
 * A primary key as {@link TableReader.get} takes it: the value of the key
 * column, or for a composite key an array of one value per key column, in
 * the order of the table's `primaryKey`. Values are normalised the way the
 * daemon normalises them when it writes (`canonicalKey`): `1`, `1n` and
 * `"1"` name the same record, a boolean is `"true"`/`"false"`, and a
 * composite key `[12, "a"]` is the same as `["12", "a"]`.
 *
 * Everything else is matched by its exact text as Postgres returns it, so
 * pass a `numeric` key with its column's scale (`"1.50"` for a
 * `numeric(10,2)` value, not `1.5`) and a `uuid` in lower case, as Postgres
 * prints it. (Normalising them would need the column's type, which readers do
 * not know: a `text` key `"1.50"` is not `"1.5"`.) To look such keys up by
 * other spellings, cast the key in the cached query, e.g.
 * `SELECT id::float8 AS id` or `upper(id::text) AS id`.
 */
export type ReaderKey = PrimaryKey | boolean | readonly (PrimaryKey | boolean)[];

/** The Redis field of a reader's key: the writer's `canonicalKey`, then its field text. */
export function readerKeyField(key: ReaderKey): string {
  const canonical = canonicalKey(Array.isArray(key) ? key : [key]);
  if (canonical === null) {
    throw new InvalidArgumentError(
      `A key ${Array.isArray(key) ? 'with a null or undefined part' : 'of null or undefined'} names no record (a NULL key matches nothing); pass the key column's value${Array.isArray(key) ? 's, one per key column' : ''}.`,
    );
  }
  return primaryKeyField(canonical);
}
