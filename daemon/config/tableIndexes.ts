import { KeyColumnIndexes } from '../../lib/core/keyColumnIndexes.ts';
import { ConfigError } from './configError.ts';
import type { TableConfig } from './configSchema.ts';

/**
 * Builds a table's Indexes: a {@link KeyColumnIndexes} over its query with one
 * lookup per `match` column list, or what its `indexes` factory or `module`
 * returns, which must be a KeyColumnIndexes too (a subclass may add indexes
 * or parse records), since the daemon names records by key columns.
 *
 * @throws {@link ConfigError} when a factory returns something else, or a table has neither query nor factory.
 */
export async function tableIndexes(table: TableConfig): Promise<KeyColumnIndexes> {
  const lookups = table.sources.flatMap((source) => (source.match === undefined ? [] : [source.match]));
  if (table.indexes === undefined && table.module === undefined) {
    if (table.query === undefined) throw new ConfigError(`${table.configPath}: no query, indexes or module; nothing says how to read the table.`);
    return new KeyColumnIndexes({ query: table.query, primaryKey: table.primaryKey, lookups });
  }
  const factory = table.indexes ?? ((await import(table.module!)) as { default?: unknown }).default;
  if (typeof factory !== 'function') throw new ConfigError(`${table.configPath}.module: ${table.module} has no default export that is a function returning Indexes.`);
  const indexes: unknown = await (factory as (table: TableConfig) => unknown)(table);
  if (!(indexes instanceof KeyColumnIndexes)) {
    throw new ConfigError(
      `${table.configPath}: the indexes factory returned ${indexes?.constructor?.name ?? typeof indexes}; the daemon needs a KeyColumnIndexes ` +
        '(or a subclass) so that it can name records by their key and match columns.',
    );
  }
  for (const columns of lookups) indexes.columnsOf(indexes.indexNameFor(columns));
  return indexes;
}
