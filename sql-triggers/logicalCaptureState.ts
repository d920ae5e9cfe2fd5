import type pg from 'pg';
import { readPartitionTruncateTriggers, type PartitionTruncateState } from './partitionTruncateTriggers.ts';
import { formatQualifiedName, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';
import type { LogicalCaptureSpec } from './logicalCaptureSpec.ts';

/**
 * What the publication's COMMENT says when install created it: uninstall
 * drops, and install alters, only a publication that carries it, never one
 * someone else made under the same name.
 */
export const PUBLICATION_COMMENT = 'tablecache: logical capture of the source tables; created by `tablecache capture install`, removed by `tablecache capture uninstall`';

/** The server settings and counts the logical capture depends on. */
export interface CaptureServerState {
  /** The connected database: the slot decodes only this one. */
  readonly database: string;
  readonly walLevel: string;
  readonly inRecovery: boolean;
  /** `server_version_num`, e.g. 150004. */
  readonly serverVersion: number;
  readonly maxReplicationSlots: number;
  /** Replication slots that exist (any kind, any database). */
  readonly usedReplicationSlots: number;
  readonly maxWalSenders: number;
  /** WAL sender processes running now (physical and logical). */
  readonly usedWalSenders: number;
  /** `max_slot_wal_keep_size` in MB; -1: unlimited. */
  readonly maxSlotWalKeepSizeMb: number;
}

/** A role and whether it may create and stream from a replication slot. */
export interface CaptureRoleState {
  readonly name: string;
  /** `null` when no such role exists. */
  readonly mayReplicate: boolean | null;
}

/** The slot as `pg_replication_slots` has it, with the distances status reports. */
export interface CaptureSlotState {
  readonly slotType: string;
  /** `null` for a physical slot. */
  readonly plugin: string | null;
  /** The database it decodes; `null` for a physical slot. */
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  /** `reserved`, `extended`, `unreserved` or `lost`; `null` when the slot never reserved WAL. */
  readonly walStatus: string | null;
  /** Bytes of WAL that can still be written before the slot is in danger of `lost`; `null` when unlimited. */
  readonly safeWalSizeBytes: number | null;
  readonly confirmedFlushLsn: string | null;
  readonly restartLsn: string | null;
  /** WAL written since the consumer's confirmed flush position, in bytes. */
  readonly lagBytes: number | null;
  /** WAL the slot keeps on disk (since its restart position), in bytes. */
  readonly retainedWalBytes: number | null;
  /** The walsender's `flush_lag` in `pg_stat_replication`, in seconds; `null` when no consumer or no recent reply. */
  readonly flushLagSeconds: number | null;
}

/** The publication as the catalog has it. */
export interface CapturePublicationState {
  /** Install created it (it carries {@link PUBLICATION_COMMENT}). */
  readonly createdByInstall: boolean;
  readonly allTables: boolean;
  readonly viaPartitionRoot: boolean;
  /** Publishes INSERT, UPDATE, DELETE and TRUNCATE. */
  readonly publishesEverything: boolean;
  /** The tables added to it by name, sorted by canonical name. */
  readonly tables: readonly QualifiedTableName[];
}

/** One table whose rows a source table's changes are written to: the source itself or a partition or child. */
export interface CaptureRelationIdentity {
  /** The configured source it belongs to (canonical name). */
  readonly source: string;
  /** This table's canonical name (the source's own, or a partition's or child's). */
  readonly name: string;
  /** The source itself, a partition (at any level) of a partitioned source, or an inheritance child (at any level). */
  readonly kind: 'source' | 'partition' | 'inheritance_child';
  /** `null` when the source table does not exist. */
  readonly identity: 'default' | 'full' | 'index' | 'nothing' | null;
  /** The columns the identity gives old values of (`null`: all, for FULL); empty for NOTHING or DEFAULT without a primary key. */
  readonly identityColumns: readonly string[] | null;
}

/** Everything the checks, install, status and uninstall decide from; read in one go. */
export interface LogicalCaptureState {
  readonly server: CaptureServerState;
  /** The connected role first, then the other roles asked about. */
  readonly roles: readonly CaptureRoleState[];
  /** `null` when no slot of that name exists. */
  readonly slot: CaptureSlotState | null;
  /** `null` when no publication of that name exists. */
  readonly publication: CapturePublicationState | null;
  /** Per source table, the tables holding its rows: a plain table itself; a partitioned one's leaf partitions; an inheritance parent and its children. */
  readonly identities: readonly CaptureRelationIdentity[];
  /** Every partition of a partitioned source and whether it has the truncate trigger (empty without `spec.partitionTruncate`). */
  readonly partitionTruncate: readonly PartitionTruncateState[];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

async function readServer(client: Queryable): Promise<CaptureServerState> {
  const { rows } = await client.query<Record<string, string | boolean>>(
    `SELECT current_database() AS database, current_setting('wal_level') AS wal_level, pg_catalog.pg_is_in_recovery() AS in_recovery,
            current_setting('server_version_num') AS server_version,
            current_setting('max_replication_slots') AS max_slots,
            (SELECT count(*) FROM pg_catalog.pg_replication_slots) AS used_slots,
            current_setting('max_wal_senders') AS max_senders,
            (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender') AS used_senders,
            current_setting('max_slot_wal_keep_size') AS keep_size`,
  );
  const row = rows[0]!;
  return {
    database: String(row['database']),
    walLevel: String(row['wal_level']),
    inRecovery: row['in_recovery'] === true,
    serverVersion: Number(row['server_version']),
    maxReplicationSlots: Number(row['max_slots']),
    usedReplicationSlots: Number(row['used_slots']),
    maxWalSenders: Number(row['max_senders']),
    usedWalSenders: Number(row['used_senders']),
    maxSlotWalKeepSizeMb: Number(String(row['keep_size']).replace(/MB$/, '')),
  };
}

async function readRoles(client: Queryable, otherRoles: readonly string[]): Promise<CaptureRoleState[]> {
  // Amazon RDS and Aurora grant replication through membership of rds_replication instead of the attribute.
  const { rows } = await client.query<{ name: string; may_replicate: boolean | null }>(
    `SELECT given.name, (SELECT r.rolreplication OR r.rolsuper
                           -- CASE, not AND: pg_has_role fails on a role that does not exist, and AND does not promise an order.
                           OR CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rds_replication')
                                   THEN pg_catalog.pg_has_role(r.oid, 'rds_replication', 'MEMBER') ELSE false END
                         FROM pg_catalog.pg_roles r WHERE r.rolname = given.name) AS may_replicate
     FROM unnest(array_prepend(current_user::text, $1::text[])) WITH ORDINALITY AS given(name, ord)
     ORDER BY ord`,
    [otherRoles],
  );
  const seen = new Set<string>();
  return rows.filter((row) => !seen.has(row.name) && seen.add(row.name)).map((row) => ({ name: row.name, mayReplicate: row.may_replicate }));
}

function numberOrNull(value: string | number | null): number | null {
  return value === null ? null : Number(value);
}

async function readSlot(client: Queryable, slot: string): Promise<CaptureSlotState | null> {
  // On a standby (PG 17 synced slots) pg_current_wal_lsn() fails; the replay position stands in.
  const { rows } = await client.query<Record<string, string | number | boolean | null>>(
    `WITH here AS (SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END AS lsn)
     SELECT s.slot_type, s.plugin, s.database, s.active, s.active_pid, s.wal_status, s.safe_wal_size,
            s.confirmed_flush_lsn::text AS confirmed_flush_lsn, s.restart_lsn::text AS restart_lsn,
            pg_catalog.pg_wal_lsn_diff(here.lsn, s.confirmed_flush_lsn) AS lag_bytes,
            pg_catalog.pg_wal_lsn_diff(here.lsn, s.restart_lsn) AS retained_bytes,
            extract(epoch FROM r.flush_lag) AS flush_lag_seconds
     FROM pg_catalog.pg_replication_slots s CROSS JOIN here
     LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid
     WHERE s.slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return {
    slotType: String(row['slot_type']),
    plugin: row['plugin'] as string | null,
    database: row['database'] as string | null,
    active: row['active'] === true,
    activePid: numberOrNull(row['active_pid'] as number | null),
    walStatus: row['wal_status'] as string | null,
    safeWalSizeBytes: numberOrNull(row['safe_wal_size'] as string | null),
    confirmedFlushLsn: row['confirmed_flush_lsn'] as string | null,
    restartLsn: row['restart_lsn'] as string | null,
    lagBytes: numberOrNull(row['lag_bytes'] as string | null),
    retainedWalBytes: numberOrNull(row['retained_bytes'] as string | null),
    flushLagSeconds: numberOrNull(row['flush_lag_seconds'] as string | null),
  };
}

async function readPublication(client: Queryable, publication: string): Promise<CapturePublicationState | null> {
  const { rows } = await client.query<{ comment: string | null; all_tables: boolean; via_root: boolean; everything: boolean; tables: { schema: string; table: string }[] }>(
    `SELECT pg_catalog.obj_description(p.oid, 'pg_publication') AS comment, p.puballtables AS all_tables, p.pubviaroot AS via_root,
            p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AS everything,
            coalesce((SELECT json_agg(json_build_object('schema', n.nspname, 'table', c.relname))
                      FROM pg_catalog.pg_publication_rel pr
                      JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE pr.prpubid = p.oid), '[]') AS tables
     FROM pg_catalog.pg_publication p WHERE p.pubname = $1`,
    [publication],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return {
    createdByInstall: row.comment === PUBLICATION_COMMENT,
    allTables: row.all_tables,
    viaPartitionRoot: row.via_root,
    publishesEverything: row.everything,
    tables: row.tables.sort((a, b) => formatQualifiedName(a).localeCompare(formatQualifiedName(b))),
  };
}

const IDENTITY_KINDS = { d: 'default', f: 'full', i: 'index', n: 'nothing' } as const;

/** The replica identity of every table the source tables' rows live in (the sources, their partitions and children). */
export async function readCaptureIdentities(client: Queryable, spec: LogicalCaptureSpec): Promise<CaptureRelationIdentity[]> {
  const names = spec.sources.map((source) => quoteQualifiedName(source));
  // Rows are written to leaves: a partitioned table (relkind p) holds none, its partitions do.
  const { rows } = await client.query<{
    ord: string;
    schema: string | null;
    table: string | null;
    is_source: boolean;
    is_partition: boolean;
    identity: keyof typeof IDENTITY_KINDS | null;
    columns: string[] | null;
  }>(
    `WITH RECURSIVE tree(ord, oid) AS (
       SELECT given.ord, to_regclass(given.name)::oid FROM unnest($1::text[]) WITH ORDINALITY AS given(name, ord)
       UNION
       SELECT tree.ord, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.oid
     )
     SELECT tree.ord, n.nspname AS schema, c.relname AS table, c.relreplident AS identity,
            c.oid = to_regclass(($1::text[])[tree.ord::int]) AS is_source, c.relispartition AS is_partition,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum)
             FROM pg_catalog.pg_index x JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
             WHERE x.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN x.indisprimary WHEN 'i' THEN x.indisreplident ELSE false END) AS columns
     FROM tree
     LEFT JOIN pg_catalog.pg_class c ON c.oid = tree.oid
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid IS NULL OR c.relkind <> 'p'
     ORDER BY tree.ord, n.nspname, c.relname`,
    [names],
  );
  return rows.map((row) => {
    const source = formatQualifiedName(spec.sources[Number(row.ord) - 1]!);
    if (row.schema === null || row.table === null || row.identity === null) return { source, name: source, kind: 'source' as const, identity: null, identityColumns: [] };
    const identity = IDENTITY_KINDS[row.identity];
    const kind = row.is_source ? ('source' as const) : row.is_partition ? ('partition' as const) : ('inheritance_child' as const);
    return { source, name: formatQualifiedName({ schema: row.schema, table: row.table }), kind, identity, identityColumns: identity === 'full' ? null : (row.columns ?? []) };
  });
}

/**
 * Reads everything the logical capture depends on, for `spec`: server
 * settings, whether the connected role (and `otherRoles`, e.g. the daemon's
 * if it logs in as another) may replicate, the slot, the publication, and the
 * replica identity of every table the source tables' rows live in.
 * Read-only; takes no lock.
 */
export async function readLogicalCaptureState(client: Queryable, spec: LogicalCaptureSpec, otherRoles: readonly string[] = []): Promise<LogicalCaptureState> {
  return {
    server: await readServer(client),
    roles: await readRoles(client, otherRoles),
    slot: await readSlot(client, spec.slot),
    publication: await readPublication(client, spec.publication),
    identities: await readCaptureIdentities(client, spec),
    partitionTruncate: spec.partitionTruncate === undefined ? [] : await readPartitionTruncateTriggers(client, spec.publication, spec.sources),
  };
}

/**
 * The source tables `publication` does not publish (canonical names), or
 * `null` when it does not exist: a daemon must not stream while a configured
 * table's changes would never reach it (a table added to the configuration
 * since `capture install` last ran).
 */
export async function unpublishedSources(client: Queryable, publication: string, sources: readonly QualifiedTableName[]): Promise<string[] | null> {
  const { rows } = await client.query<{ exists: boolean; missing: number[] }>(
    `SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = $1) AS exists,
            ARRAY(SELECT given.ord::int FROM unnest($2::text[]) WITH ORDINALITY AS given(name, ord)
                  WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
                                    WHERE p.pubname = $1 AND pr.prrelid = to_regclass(given.name))
                  ORDER BY given.ord) AS missing`,
    [publication, sources.map((source) => quoteQualifiedName(source))],
  );
  if (!rows[0]!.exists) return null;
  return rows[0]!.missing.map((ord) => formatQualifiedName(sources[ord - 1]!));
}

