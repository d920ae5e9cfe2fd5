import type { SourceTableSpec, TriggerSpec } from '../../sql-triggers/triggerSpec.ts';
import type { TablecacheConfig } from './configSchema.ts';

/**
 * The trigger input for a configuration. A table that is a source of several
 * cached tables gets one trigger carrying the union of their key columns (in
 * first-seen order: payloads name them in `c`), and a column filter only when
 * every cached table filters (the union of their columns); otherwise every
 * change to it matters.
 */
export function triggerSpecFromConfig(config: TablecacheConfig): TriggerSpec {
  const merged = new Map<string, { schema: string; table: string; keyColumns: string[]; columns: Set<string> | null }>();
  for (const source of config.tables.flatMap((table) => table.sources)) {
    const entry = merged.get(source.name);
    if (entry === undefined) {
      merged.set(source.name, {
        schema: source.schema,
        table: source.table,
        keyColumns: [...source.key],
        columns: source.columns === undefined ? null : new Set(source.columns),
      });
      continue;
    }
    for (const column of source.key) if (!entry.keyColumns.includes(column)) entry.keyColumns.push(column);
    if (source.columns === undefined || entry.columns === null) entry.columns = null;
    else for (const column of source.columns) entry.columns.add(column);
  }
  const sources = [...merged.values()].map(
    ({ schema, table, keyColumns, columns }): SourceTableSpec => ({
      schema,
      table,
      keyColumns,
      ...(columns === null ? {} : { columns: [...columns] }),
    }),
  );
  return { ...config.triggers, sources };
}
