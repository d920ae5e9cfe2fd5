import { createHash } from 'node:crypto';
import type pg from 'pg';
import { formatQualifiedName, quoteIdentifier, quoteLiteral, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';
import { PAYLOAD_VERSION } from './payload.ts';

/**
 * The logical capture's TRUNCATE triggers on partitions. With
 * `publish_via_partition_root` Postgres publishes a partition's rows under
 * its root, but a TRUNCATE naming one partition (or a partitioned
 * partition) alone is not published at all. A statement-level AFTER
 * TRUNCATE trigger on each partition, at every level, sends the root's
 * truncate payload (`{"v":1,"op":"T","t":<root>,…}`) as a transactional
 * logical message with the daemon's channel as prefix, which the daemon
 * reads like the triggers' NOTIFY: a reload. It fires on TRUNCATE only, so
 * writes pay nothing.
 */

/** Where the trigger function lives and which channel its messages carry. */
export interface PartitionTruncateSpec {
  /** The schema of the trigger function (`triggers.schema`). */
  readonly schema: string;
  /** The daemon's channel: the messages' prefix. */
  readonly channel: string;
}

/** The function every deployment's partition truncate triggers call (arguments: channel, root table). */
const FUNCTION_NAME = 'tablecache_partition_truncate';

/** The trigger's name: one per publication, so two deployments on one table keep their own. */
export function partitionTruncateTriggerName(publication: string): string {
  return `tablecache_truncate_${createHash('sha256').update(publication).digest('hex').slice(0, 12)}`;
}

/** A partition of a source table, at any level, and whether it has the deployment's truncate trigger (enabled). */
export interface PartitionTruncateState {
  /** Canonical name of the source (the partitioned root). */
  readonly source: string;
  readonly partition: QualifiedTableName;
  readonly installed: boolean;
}

/** Every partition of every partitioned source, with its trigger state; empty when no source is partitioned. */
export async function readPartitionTruncateTriggers(client: Pick<pg.ClientBase, 'query'>, publication: string, sources: readonly QualifiedTableName[]): Promise<PartitionTruncateState[]> {
  const { rows } = await client.query<{ ord: string; schema: string; table: string; installed: boolean }>(
    `SELECT given.ord, n.nspname AS schema, c.relname AS table,
            EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2 AND t.tgenabled <> 'D') AS installed
     FROM unnest($1::text[]) WITH ORDINALITY AS given(name, ord)
     CROSS JOIN LATERAL pg_catalog.pg_partition_tree(to_regclass(given.name)) AS tree
     JOIN pg_catalog.pg_class c ON c.oid = tree.relid
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE tree.level > 0
     ORDER BY given.ord, n.nspname, c.relname`,
    [sources.map((source) => quoteQualifiedName(source)), partitionTruncateTriggerName(publication)],
  );
  return rows.map((row) => ({ source: formatQualifiedName(sources[Number(row.ord) - 1]!), partition: { schema: row.schema, table: row.table }, installed: row.installed }));
}

function functionStatement(spec: PartitionTruncateSpec): string {
  const name = `${quoteIdentifier(spec.schema)}.${FUNCTION_NAME}`;
  // Never fails the user's TRUNCATE (as the change triggers): a failure is a warning.
  return `CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $tablecache$
BEGIN
  PERFORM pg_catalog.pg_logical_emit_message(true, TG_ARGV[0], json_build_object(
    'v', ${PAYLOAD_VERSION}, 't', TG_ARGV[1], 'op', 'T', 'xid', pg_catalog.pg_current_xact_id()::text,
    'ts', (extract(epoch FROM clock_timestamp()) * 1000)::numeric(16, 3))::text);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'tablecache: the partition truncate trigger on % failed (%: %); the cache reloads only at the next reload', TG_TABLE_NAME, SQLSTATE, SQLERRM;
  RETURN NULL;
END
$tablecache$`;
}

/**
 * The statements that give every partition without it the truncate trigger
 * (and create or replace the function first); empty when all have it.
 */
export function partitionTruncateStatements(spec: PartitionTruncateSpec, publication: string, partitions: readonly PartitionTruncateState[]): string[] {
  const missing = partitions.filter((partition) => !partition.installed);
  if (missing.length === 0) return [];
  const trigger = quoteIdentifier(partitionTruncateTriggerName(publication));
  const fn = `${quoteIdentifier(spec.schema)}.${FUNCTION_NAME}`;
  return [
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(spec.schema)}`,
    functionStatement(spec),
    ...missing.flatMap((partition) => {
      const table = quoteQualifiedName(partition.partition);
      return [
        `DROP TRIGGER IF EXISTS ${trigger} ON ${table}`,
        `CREATE TRIGGER ${trigger} AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}(${quoteLiteral(spec.channel)}, ${quoteLiteral(partition.source)})`,
      ];
    }),
  ];
}

/**
 * The statements that drop the deployment's truncate triggers wherever they
 * are, then the function of any schema once no trigger calls it.
 */
export async function partitionTruncateUninstallStatements(client: Pick<pg.ClientBase, 'query'>, publication: string): Promise<string[]> {
  const { rows } = await client.query<{ relation: string; function_left: string | null }>(
    `SELECT t.tgrelid::regclass::text AS relation,
            CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_trigger o WHERE o.tgfoid = t.tgfoid AND o.tgname <> t.tgname) THEN t.tgfoid::regprocedure::text END AS function_left
     FROM pg_catalog.pg_trigger t WHERE t.tgname = $1 ORDER BY 1`,
    [partitionTruncateTriggerName(publication)],
  );
  const trigger = quoteIdentifier(partitionTruncateTriggerName(publication));
  const functions = [...new Set(rows.flatMap((row) => (row.function_left === null ? [] : [row.function_left])))];
  return [...rows.map((row) => `DROP TRIGGER IF EXISTS ${trigger} ON ${row.relation}`), ...functions.map((fn) => `DROP FUNCTION IF EXISTS ${fn}`)];
}
