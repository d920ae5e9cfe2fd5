import { createHash } from 'node:crypto';
import type pg from 'pg';
import { formatQualifiedName, quoteIdentifier, quoteLiteral, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';
import { CaptureSetupError, logicalCaptureChecks, type CaptureCheck } from './logicalCaptureChecks.ts';
import { checkLogicalCaptureSpec, type LogicalCaptureSpec } from './logicalCaptureSpec.ts';
import { PUBLICATION_COMMENT, readLogicalCaptureState, type LogicalCaptureState } from './logicalCaptureState.ts';
import { partitionTruncateStatements } from './partitionTruncateTriggers.ts';
import { doBlock } from './sourceTriggers.ts';
import { DEFAULT_LOCK_TIMEOUT_MS } from './triggerTransaction.ts';

/** How {@link installLogicalCapture} runs. */
export interface LogicalCaptureInstallOptions {
  /** Plan, check and report the statements, change nothing. */
  readonly dryRun?: boolean;
  /**
   * Milliseconds to wait for a lock on a source table (`lock_timeout` of the
   * publication's transaction) and for the transactions open when the slot is
   * created to end (its `statement_timeout`; Postgres waits for them to find
   * where decoding starts). Default 5000.
   */
  readonly lockTimeoutMs?: number;
  /** Roles besides the connected one that must be able to replicate, e.g. the daemon's when it logs in as another. */
  readonly otherRoles?: readonly string[];
}

/** What {@link installLogicalCapture} did (or, on a dry run, would do). */
export interface LogicalCaptureInstallResult {
  /** The statements run (or to run) in the publication's transaction; empty when it was in place. */
  readonly publicationStatements: readonly string[];
  /** The slot's statements, each run on its own after that transaction; empty when it was in place. */
  readonly slotStatements: readonly string[];
  readonly publicationCreated: boolean;
  /** Source tables added to an existing publication (canonical names). */
  readonly addedTables: readonly string[];
  /** Tables removed from the publication: no longer sources in the configuration. */
  readonly removedTables: readonly string[];
  /** Partitions given the truncate trigger (canonical names; see `partitionTruncateTriggers.ts`). */
  readonly partitionTriggersCreated: readonly string[];
  readonly slotCreated: boolean;
  /** The slot was invalidated (`wal_status` lost) and was dropped and created again: the daemon reloads. */
  readonly slotRecreated: boolean;
  /** Findings that did not stop the install (e.g. a column filter the replica identity cannot serve). */
  readonly warnings: readonly CaptureCheck[];
  readonly dryRun: boolean;
}

const PUBLICATION_OPTIONS = "publish = 'insert, update, delete, truncate', publish_via_partition_root = true";

function tableList(tables: readonly QualifiedTableName[]): string {
  return tables.map((table) => quoteQualifiedName(table)).join(', ');
}

function createPublicationStatements(spec: LogicalCaptureSpec): string[] {
  // publish_via_partition_root: a partitioned source's changes arrive under its own name, not its partitions'.
  const publication = quoteIdentifier(spec.publication);
  return [
    `CREATE PUBLICATION ${publication} FOR TABLE ${tableList(spec.sources)} WITH (${PUBLICATION_OPTIONS})`,
    `COMMENT ON PUBLICATION ${publication} IS ${quoteLiteral(PUBLICATION_COMMENT)}`,
  ];
}

/** Postgres 17 can keep a logical slot on standbys (`sync_replication_slots`), for slots created with `failover`. */
const FAILOVER_SLOTS_VERSION = 170_000;

function createSlotStatement(slot: string, serverVersion = 0): string {
  const failover = serverVersion >= FAILOVER_SLOTS_VERSION ? ', temporary => false, twophase => false, failover => true' : '';
  return `SELECT pg_catalog.pg_create_logical_replication_slot(${quoteLiteral(slot)}, 'pgoutput'${failover})`;
}

function dropSlotStatement(slot: string): string {
  return `SELECT pg_catalog.pg_drop_replication_slot(${quoteLiteral(slot)})`;
}

function planPublication(state: LogicalCaptureState, spec: LogicalCaptureSpec) {
  const existing = state.publication;
  if (existing === null) return { statements: createPublicationStatements(spec), created: true, added: [], removed: [] };
  const publication = quoteIdentifier(spec.publication);
  const configured = new Set(spec.sources.map((source) => formatQualifiedName(source)));
  const present = new Set(existing.tables.map((table) => formatQualifiedName(table)));
  const added = spec.sources.filter((source) => !present.has(formatQualifiedName(source)));
  const removed = existing.tables.filter((table) => !configured.has(formatQualifiedName(table)));
  const statements = [
    ...(added.length > 0 ? [`ALTER PUBLICATION ${publication} ADD TABLE ${tableList(added)}`] : []),
    ...(removed.length > 0 ? [`ALTER PUBLICATION ${publication} DROP TABLE ${tableList(removed)}`] : []),
    ...(existing.viaPartitionRoot && existing.publishesEverything ? [] : [`ALTER PUBLICATION ${publication} SET (${PUBLICATION_OPTIONS})`]),
  ];
  return { statements, created: false, added: added.map((table) => formatQualifiedName(table)), removed: removed.map((table) => formatQualifiedName(table)) };
}

function planSlot(state: LogicalCaptureState, spec: LogicalCaptureSpec) {
  const create = createSlotStatement(spec.slot, state.server.serverVersion);
  if (state.slot === null) return { statements: [create], created: true, recreated: false };
  // An invalidated slot can never stream again; the checks refused one still held by a process.
  if (state.slot.walStatus === 'lost') return { statements: [dropSlotStatement(spec.slot), create], created: false, recreated: true };
  return { statements: [], created: false, recreated: false };
}

/** The advisory lock that serialises installers of one publication, as a statement. */
function captureLockStatement(publication: string): string {
  const key = createHash('sha256').update(`tablecache capture ${publication}`).digest().readBigInt64BE(0);
  return `SELECT pg_catalog.pg_advisory_xact_lock(${key})`;
}

function timeoutMs(options: LogicalCaptureInstallOptions): number {
  return Math.max(0, Math.round(options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS));
}

/** Reads, checks and plans under the install lock; runs the publication's statements unless a dry run. */
async function publicationTransaction(client: pg.ClientBase, spec: LogicalCaptureSpec, options: LogicalCaptureInstallOptions) {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = ${timeoutMs(options)}`);
    await client.query(captureLockStatement(spec.publication));
    const state = await readLogicalCaptureState(client, spec, options.otherRoles);
    const checks = logicalCaptureChecks(state, spec);
    const problems = checks.filter((check) => check.level === 'problem');
    if (problems.length > 0) throw new CaptureSetupError(problems);
    const planned = planPublication(state, spec);
    // In the publication's transaction: a partition attached meanwhile waits for the lock, and gets its trigger at the next install.
    const truncateStatements = spec.partitionTruncate === undefined ? [] : partitionTruncateStatements(spec.partitionTruncate, spec.publication, state.partitionTruncate);
    const publication = {
      ...planned,
      statements: [...planned.statements, ...truncateStatements],
      truncateTriggers: truncateStatements.length === 0 ? [] : state.partitionTruncate.filter((partition) => !partition.installed).map((partition) => formatQualifiedName(partition.partition)),
    };
    const slot = planSlot(state, spec);
    if (!options.dryRun) for (const statement of publication.statements) await client.query(statement);
    await client.query(options.dryRun ? 'ROLLBACK' : 'COMMIT');
    // The partitions' missing truncate triggers are what this install creates: no warning left about them.
    const fixed = (check: CaptureCheck) => check.topic === 'partition_truncate' && spec.partitionTruncate !== undefined;
    return { publication, slot, warnings: checks.filter((check) => check.level === 'warning' && !fixed(check)) };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Runs the slot's statements, each in a transaction of its own: a slot
 * cannot be created in a transaction that has written. Another installer that
 * created it meanwhile (42710) leaves nothing to do.
 */
async function runSlotStatements(client: pg.ClientBase, statements: readonly string[], options: LogicalCaptureInstallOptions): Promise<boolean> {
  for (const statement of statements) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL statement_timeout = ${timeoutMs(options)}`);
      await client.query(statement);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if ((error as { code?: string }).code === '42710') return false;
      throw error;
    }
  }
  return true;
}

/**
 * Sets up the logical capture of `spec`: checks the server (wal_level, the
 * role's REPLICATION, slot and WAL sender headroom, every source table's
 * replica identity), then creates the publication of the source tables (or
 * adds and removes tables to match the spec), then the `pgoutput` slot (or
 * recreates an invalidated one; on Postgres 17 and later with `failover`, so
 * that standbys with `sync_replication_slots` keep it). Idempotent: a second
 * run changes nothing.
 * The publication comes first so that the slot never decodes WAL from before
 * it existed.
 *
 * @throws {@link CaptureSetupError} listing every problem and its fix, before anything is changed.
 * @throws {@link InvalidArgumentError} for a malformed spec; the driver's error when a statement fails
 * (57014 when a transaction stayed open past `lockTimeoutMs` while the slot was created).
 */
export async function installLogicalCapture(client: pg.ClientBase, spec: LogicalCaptureSpec, options: LogicalCaptureInstallOptions = {}): Promise<LogicalCaptureInstallResult> {
  checkLogicalCaptureSpec(spec);
  const { publication, slot, warnings } = await publicationTransaction(client, spec, options);
  let slotChanged = slot.statements.length > 0;
  if (slotChanged && !options.dryRun) slotChanged = await runSlotStatements(client, slot.statements, options);
  return {
    publicationStatements: publication.statements,
    slotStatements: slot.statements,
    publicationCreated: publication.created,
    addedTables: publication.added,
    removedTables: publication.removed,
    partitionTriggersCreated: publication.truncateTriggers,
    slotCreated: slot.created && slotChanged,
    slotRecreated: slot.recreated && slotChanged,
    warnings,
    dryRun: options.dryRun ?? false,
  };
}

/**
 * The logical capture's setup as a script, for migration tools: creates the
 * publication or sets its tables to the spec's, then creates the slot unless
 * it exists. Idempotent. It checks nothing (`tablecache capture install`
 * does); the slot's statement must run outside a transaction that has
 * written, so the script is not one transaction.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec.
 */
export function logicalCaptureScript(spec: LogicalCaptureSpec): string {
  checkLogicalCaptureSpec(spec);
  const publication = quoteIdentifier(spec.publication);
  const publicationBlock = doBlock(`
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = ${quoteLiteral(spec.publication)}) THEN
    ${createPublicationStatements(spec).join(';\n    ')};
  ELSE
    ALTER PUBLICATION ${publication} SET TABLE ${tableList(spec.sources)};
    ALTER PUBLICATION ${publication} SET (${PUBLICATION_OPTIONS});
  END IF;
END`);
  const slotStatement = `${createSlotStatement(spec.slot)}\nWHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = ${quoteLiteral(spec.slot)})`;
  const header = [
    `-- tablecache logical capture: publication ${spec.publication}, slot ${spec.slot} (pgoutput).`,
    '-- Needs wal_level = logical, a role with REPLICATION that owns the source tables, and a replica identity on each',
    '-- source table that holds its key columns: `tablecache capture install` checks these, this script does not.',
    '-- Idempotent. The last statement creates the slot and must not run in a transaction that has written: run it on its own.',
    '-- Generated by `tablecache capture sql`; do not edit.',
  ];
  return `${header.join('\n')}\n${publicationBlock};\n\n${slotStatement};\n`;
}
