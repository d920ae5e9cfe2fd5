import { TablecacheError } from '../lib/core/errors.ts';
import { formatQualifiedName, quoteIdentifier, quoteLiteral } from './identifiers.ts';
import type { LogicalCaptureSpec } from './logicalCaptureSpec.ts';
import type { CaptureRelationIdentity, LogicalCaptureState } from './logicalCaptureState.ts';

/** What a check is about, stable for scripts reading `--json`. */
export type CaptureCheckTopic =
  | 'standby'
  | 'wal_level'
  | 'replication_role'
  | 'replication_slots'
  | 'wal_senders'
  | 'replica_identity'
  | 'inheritance_child'
  | 'partition_truncate'
  | 'slot'
  | 'publication';

/**
 * One finding of the logical capture's checks. A `problem` stops install (the
 * capture would not work, or would break the source tables' writes); a
 * `warning` does not, but costs something the operator should know.
 */
export interface CaptureCheck {
  readonly topic: CaptureCheckTopic;
  readonly level: 'problem' | 'warning';
  /** What is wrong and what it means for the cache or the writers. */
  readonly message: string;
  /** The exact statement(s) or step that fixes it. */
  readonly fix: string;
  /** The source table it is about (canonical name), when it is about one. */
  readonly source?: string;
}

/**
 * Postgres is not set up for the logical capture: the message lists each
 * problem with its fix. Code `TC_CAPTURE_SETUP`; nothing was changed.
 */
export class CaptureSetupError extends TablecacheError {
  readonly checks: readonly CaptureCheck[];

  constructor(checks: readonly CaptureCheck[]) {
    super('TC_CAPTURE_SETUP', `Postgres is not ready for the logical capture; nothing was changed:\n${formatCaptureChecks(checks)}`);
    this.checks = checks;
  }
}

/** Lists checks for a terminal: each message, then its fix indented. */
export function formatCaptureChecks(checks: readonly CaptureCheck[]): string {
  return checks.map((check) => `  - ${check.level === 'problem' ? '' : 'warning: '}${check.message}\n    Fix: ${check.fix}`).join('\n');
}

function restartNote(setting: string, value: string): string {
  return `ALTER SYSTEM SET ${setting} = ${value}; then restart Postgres (a reload is not enough)`;
}

function serverChecks(state: LogicalCaptureState, spec: LogicalCaptureSpec): CaptureCheck[] {
  const { server, slot } = state;
  const checks: CaptureCheck[] = [];
  if (server.inRecovery) {
    checks.push({
      topic: 'standby',
      level: 'problem',
      message: 'this server is a standby (in recovery): publications and slots are created on the primary',
      fix: 'point postgres.url at the primary',
    });
  }
  if (server.walLevel !== 'logical') {
    checks.push({
      topic: 'wal_level',
      level: 'problem',
      message: `wal_level is ${server.walLevel}; logical decoding needs logical`,
      fix: `${restartNote('wal_level', 'logical')}. Managed services set a parameter instead: rds.logical_replication = 1 (Amazon RDS, Aurora), cloudsql.logical_decoding = on (Cloud SQL)`,
    });
  }
  if (slot === null && server.usedReplicationSlots >= server.maxReplicationSlots) {
    checks.push({
      topic: 'replication_slots',
      level: 'problem',
      message: `all ${server.maxReplicationSlots} replication slot(s) allowed by max_replication_slots are in use; ${spec.slot} needs one more`,
      fix: `${restartNote('max_replication_slots', String(server.usedReplicationSlots + 1))}, or drop a slot nothing reads`,
    });
  }
  const freeSenders = server.maxWalSenders - server.usedWalSenders;
  if (!(slot?.active ?? false) && freeSenders < 1) {
    checks.push({
      topic: 'wal_senders',
      level: 'warning',
      message: `max_wal_senders is ${server.maxWalSenders} and ${server.usedWalSenders} WAL sender(s) run: the daemon could not open its replication connection`,
      fix: restartNote('max_wal_senders', String(server.usedWalSenders + 2)),
    });
  }
  return checks;
}

function roleChecks(state: LogicalCaptureState): CaptureCheck[] {
  return state.roles.flatMap((role): CaptureCheck[] => {
    if (role.mayReplicate === true) return [];
    if (role.mayReplicate === null) {
      return [{ topic: 'replication_role', level: 'problem', message: `role ${role.name} does not exist`, fix: 'correct the user in the connection URL' }];
    }
    return [
      {
        topic: 'replication_role',
        level: 'problem',
        message: `role ${role.name} has neither the REPLICATION attribute nor superuser: it can neither create the slot nor stream from it`,
        fix: `as a superuser: ALTER ROLE ${quoteIdentifier(role.name)} REPLICATION; (Amazon RDS: GRANT rds_replication TO ${quoteIdentifier(role.name)};)`,
      },
    ];
  });
}

function describeIdentity(relation: CaptureRelationIdentity): string {
  if (relation.identity === 'nothing') return 'REPLICA IDENTITY NOTHING';
  if (relation.identity === 'index') return `a replica identity index on (${relation.identityColumns?.join(', ')})`;
  if (relation.identityColumns?.length === 0) return 'REPLICA IDENTITY DEFAULT and no primary key';
  return `its primary key (${relation.identityColumns?.join(', ')})`;
}

/**
 * Whether each table holding a source's rows has a replica identity that
 * gives the old values of its key columns (problems), and of its filtered
 * columns (warnings). Each check names its `source`.
 */
export function replicaIdentityChecks(identities: readonly CaptureRelationIdentity[], spec: LogicalCaptureSpec): CaptureCheck[] {
  const byName = new Map(spec.sources.map((source) => [formatQualifiedName(source), source]));
  return identities.flatMap((relation): CaptureCheck[] => {
    const source = byName.get(relation.source)!;
    // A missing table is the configuration check's to report; nothing to say about its identity.
    if (relation.identity === null || relation.identityColumns === null) return [];
    const fullFix = `ALTER TABLE ${relation.name} REPLICA IDENTITY FULL;`;
    const where = relation.name === relation.source ? relation.name : `${relation.name} (below source ${relation.source})`;
    if (relation.identityColumns.length === 0) {
      return [
        {
          topic: 'replica_identity',
          source: relation.source,
          level: 'problem',
          message: `${where} has ${describeIdentity(relation)}: once it is in the publication, Postgres refuses every UPDATE and DELETE on it`,
          fix: `${fullFix} (or ${relation.identity === 'nothing' ? 'REPLICA IDENTITY DEFAULT, with a primary key' : 'add a primary key'} that holds the key columns ${source.keyColumns.join(', ')})`,
        },
      ];
    }
    const missing = source.keyColumns.filter((column) => !relation.identityColumns!.includes(column));
    if (missing.length > 0) {
      return [
        {
          topic: 'replica_identity',
          source: relation.source,
          level: 'problem',
          message: `${where}: ${describeIdentity(relation)} does not hold key column(s) ${missing.join(', ')}, so an UPDATE or DELETE would not carry their old values and the cached records of the old key could not be found`,
          fix: `${fullFix} (or REPLICA IDENTITY USING INDEX on a unique index over ${[...new Set([...relation.identityColumns, ...missing])].join(', ')}, NOT NULL columns)`,
        },
      ];
    }
    if (source.columns === undefined) return [];
    return [
      {
        topic: 'replica_identity',
        source: relation.source,
        level: 'warning',
        message: `${where} filters on columns ${source.columns.join(', ')}, but ${describeIdentity(relation)} gives no old values to compare them with: every UPDATE refreshes its keys, as if no filter were set`,
        fix: `for the filter to skip updates that change none of them: ${fullFix} (each UPDATE then writes the whole old row to the WAL)`,
      },
    ];
  });
}

function objectChecks(state: LogicalCaptureState, spec: LogicalCaptureSpec): CaptureCheck[] {
  const checks: CaptureCheck[] = [];
  const { slot, publication } = state;
  if (slot !== null && (slot.slotType !== 'logical' || slot.plugin !== 'pgoutput' || slot.database !== state.server.database)) {
    const what = slot.slotType !== 'logical' ? 'a physical slot' : slot.plugin !== 'pgoutput' ? `a slot of plugin ${slot.plugin}` : `a slot of database ${slot.database}`;
    checks.push({
      topic: 'slot',
      level: 'problem',
      message: `replication slot ${spec.slot} exists but is ${what}, not this deployment's pgoutput slot on ${state.server.database}`,
      fix: `set capture.slot to another name, or drop it where it belongs: SELECT pg_drop_replication_slot(${quoteLiteral(spec.slot)});`,
    });
  } else if (slot?.walStatus === 'lost' && slot.active) {
    checks.push({
      topic: 'slot',
      level: 'problem',
      message: `replication slot ${spec.slot} is invalidated (wal_status lost) and still held by process ${slot.activePid}`,
      fix: 'stop the daemon, run `tablecache capture install` (it recreates the slot), start the daemon: it reloads',
    });
  }
  if (publication !== null && (!publication.createdByInstall || publication.allTables)) {
    checks.push({
      topic: 'publication',
      level: 'problem',
      message: `publication ${spec.publication} exists but ${publication.allTables ? 'is FOR ALL TABLES' : 'was not created by tablecache'}; install will not change it`,
      fix: `set capture.publication to another name, or drop it: DROP PUBLICATION ${quoteIdentifier(spec.publication)};`,
    });
  }
  return checks;
}

/**
 * What the publication cannot carry under the source's name. It publishes
 * partitions through their root (`publish_via_partition_root`), but
 * inheritance children under their own names, which the stream does not map
 * to a source; and Postgres does not publish a TRUNCATE of one partition
 * alone through the root at all.
 */
function hierarchyChecks(state: LogicalCaptureState, spec: LogicalCaptureSpec): CaptureCheck[] {
  const configured = new Set(spec.sources.map((source) => formatQualifiedName(source)));
  const children = new Map<string, string[]>();
  const partitioned = new Set<string>();
  for (const relation of state.identities) {
    if (relation.kind === 'partition') partitioned.add(relation.source);
    if (relation.kind !== 'inheritance_child' || configured.has(relation.name)) continue;
    children.set(relation.source, [...(children.get(relation.source) ?? []), relation.name]);
  }
  const childChecks = [...children].map(
    ([source, names]): CaptureCheck => ({
      topic: 'inheritance_child',
      level: 'problem',
      message: `${source} has inheritance children (${names.join(', ')}): the publication sends their changes under their own names, which the logical capture does not follow, so they would be lost`,
      fix: `name each child as a source too, with the same key (${names.map((name) => `sources: { ${name}: … }`).join(', ')}), or keep capture.method triggers for this deployment`,
    }),
  );
  if (spec.partitionTruncate !== undefined) {
    const missing = state.partitionTruncate.filter((partition) => !partition.installed);
    if (missing.length === 0) return childChecks;
    return [
      ...childChecks,
      {
        topic: 'partition_truncate',
        level: 'warning',
        message: `partition(s) ${missing.map((partition) => formatQualifiedName(partition.partition)).join(', ')} have no truncate trigger: Postgres does not publish a TRUNCATE of one partition alone, so the cached records of one truncated that way would stay until the next reload`,
        fix: '`tablecache capture install` creates the triggers (they fire on TRUNCATE only)',
      },
    ];
  }
  const truncateChecks = [...partitioned].map(
    (source): CaptureCheck => ({
      topic: 'partition_truncate',
      level: 'warning',
      message: `${source} is partitioned: Postgres does not publish a TRUNCATE of one of its partitions alone (a TRUNCATE of ${source} is published), so the cached records of a partition truncated that way stay until the next reload`,
      fix: 'empty a single partition with DELETE, or detach it before truncating or dropping it; or keep capture.method triggers, whose partition triggers report it',
    }),
  );
  return [...childChecks, ...truncateChecks];
}

/**
 * Everything in `state` that stops or burdens the logical capture of `spec`,
 * problems first, each with its fix. Empty when all is in order.
 */
export function logicalCaptureChecks(state: LogicalCaptureState, spec: LogicalCaptureSpec): CaptureCheck[] {
  const checks = [...serverChecks(state, spec), ...roleChecks(state), ...objectChecks(state, spec), ...replicaIdentityChecks(state.identities, spec), ...hierarchyChecks(state, spec)];
  return [...checks.filter((check) => check.level === 'problem'), ...checks.filter((check) => check.level === 'warning')];
}
