import type pg from 'pg';
import { quoteQualifiedName, type QualifiedTableName } from '../sql-triggers/identifiers.ts';

/**
 * What a source table looks like to a cached query: which table it is (its
 * OID: a DROP and CREATE gives a new one), its columns with their types, and
 * which partitions or inheritance children it has (rows of an attached or
 * detached one enter or leave the query without any trigger firing).
 */
export interface SourceTableShape {
  /** `null` when the table does not exist. */
  readonly oid: number | null;
  /** `name type` per column, in column order (`format_type`, so `numeric(10,2)` and `varchar(20)` show their modifiers). */
  readonly columns: readonly string[];
  /** OIDs of every partition and child, recursively, sorted. */
  readonly children: readonly number[];
}

/**
 * Reads the shape of each source table, in the order given, in one query.
 */
export async function readSourceTableShapes(pool: Pick<pg.Pool, 'query'>, sources: readonly QualifiedTableName[]): Promise<SourceTableShape[]> {
  const { rows } = await pool.query<{ oid: number | null; columns: string[] | null; children: number[] | null }>(
    `WITH RECURSIVE given AS (
       SELECT ord, to_regclass(name) AS oid FROM unnest($1::text[]) WITH ORDINALITY AS g(name, ord)
     ), tree(ord, oid) AS (
       SELECT given.ord, i.inhrelid FROM given JOIN pg_catalog.pg_inherits i ON i.inhparent = given.oid
       UNION
       SELECT tree.ord, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.oid
     )
     SELECT given.oid::oid::bigint AS oid,
            (SELECT array_agg(quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
             FROM pg_catalog.pg_attribute a WHERE a.attrelid = given.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT array_agg(tree.oid::bigint ORDER BY tree.oid) FROM tree WHERE tree.ord = given.ord) AS children
     FROM given ORDER BY given.ord`,
    [sources.map((source) => quoteQualifiedName(source))],
  );
  return rows.map((row) => ({
    oid: row.oid === null ? null : Number(row.oid),
    columns: row.columns ?? [],
    children: (row.children ?? []).map(Number),
  }));
}

/** What changed between two shapes of one table, for people; `null` when nothing did. */
export function describeShapeChange(before: SourceTableShape, after: SourceTableShape): string | null {
  if (before.oid !== after.oid) {
    if (after.oid === null) return 'the table was dropped';
    if (before.oid === null) return 'the table was created';
    return `the table was dropped and created again (OID ${before.oid} is now ${after.oid})`;
  }
  const changes: string[] = [];
  const added = after.columns.filter((column) => !before.columns.includes(column));
  const removed = before.columns.filter((column) => !after.columns.includes(column));
  if (removed.length > 0) changes.push(`columns ${removed.join(', ')} are gone`);
  if (added.length > 0) changes.push(`columns ${added.join(', ')} are new`);
  if (added.length === 0 && removed.length === 0 && before.columns.join() !== after.columns.join()) changes.push('the column order changed');
  const attached = after.children.filter((oid) => !before.children.includes(oid)).length;
  const detached = before.children.filter((oid) => !after.children.includes(oid)).length;
  if (attached > 0) changes.push(`${attached} partition(s) or child table(s) attached`);
  if (detached > 0) changes.push(`${detached} partition(s) or child table(s) detached`);
  return changes.length === 0 ? null : changes.join('; ');
}
