import type pg from 'pg';
import { formatQualifiedName, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';

/**
 * A table below a source table: a partition (at any level of a partitioned
 * source) or an inheritance child. A statement that names it directly fires
 * only its own statement-level triggers, not the source's, so it needs the
 * source's triggers too.
 */
export interface SourceChild extends QualifiedTableName {
  /** Canonical name (`public.orders_2026`). */
  readonly name: string;
  readonly kind: 'partition' | 'inheritance_child';
  /** The connected role owns it (or is a member of its owner): it may create triggers on it. */
  readonly ownedByCurrentRole: boolean;
}

/** A configured source table as the catalog has it now. */
export interface SourceRelation {
  /** `pg_class.oid`, `null` when no such table exists. */
  readonly oid: number | null;
  /** Every partition and inheritance child, recursively, ordered by name. */
  readonly children: readonly SourceChild[];
}

interface ChildRow {
  ord: string;
  schema: string;
  table: string;
  is_partition: boolean;
  owned: boolean;
}

/**
 * Reads each source table's OID and every table below it (pg_inherits,
 * recursively: sub-partitions and grandchildren too). One round trip per
 * catalog query; a source that does not exist gets `oid: null` and no children.
 */
export async function readSourceRelations(client: Pick<pg.ClientBase, 'query'>, sources: readonly QualifiedTableName[]): Promise<SourceRelation[]> {
  const names = sources.map((source) => quoteQualifiedName(source));
  const oids = await client.query<{ oid: number | null }>(
    `SELECT to_regclass(name)::oid AS oid FROM unnest($1::text[]) WITH ORDINALITY AS given(name, ord) ORDER BY ord`,
    [names],
  );
  const children = await client.query<ChildRow>(
    `WITH RECURSIVE tree(ord, oid) AS (
       SELECT given.ord, i.inhrelid
       FROM unnest($1::text[]) WITH ORDINALITY AS given(name, ord)
       JOIN pg_catalog.pg_inherits i ON i.inhparent = to_regclass(given.name)
       UNION
       SELECT tree.ord, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.oid
     )
     SELECT tree.ord, n.nspname AS schema, c.relname AS table, c.relispartition AS is_partition,
            pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned
     FROM tree
     JOIN pg_catalog.pg_class c ON c.oid = tree.oid
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     ORDER BY tree.ord, n.nspname, c.relname`,
    [names],
  );
  const relations = oids.rows.map((row) => ({ oid: row.oid === null ? null : Number(row.oid), children: [] as SourceChild[] }));
  for (const row of children.rows) {
    relations[Number(row.ord) - 1]!.children.push({
      schema: row.schema,
      table: row.table,
      name: formatQualifiedName(row),
      kind: row.is_partition ? 'partition' : 'inheritance_child',
      ownedByCurrentRole: row.owned,
    });
  }
  return relations;
}
