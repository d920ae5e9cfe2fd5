import type pg from 'pg';
import { quoteIdentifier, quoteLiteral } from './identifiers.ts';
import { checkPublicationName, checkSlotName } from './logicalCaptureSpec.ts';
import { PUBLICATION_COMMENT } from './logicalCaptureState.ts';
import { partitionTruncateUninstallStatements } from './partitionTruncateTriggers.ts';

/** Which logical capture {@link uninstallLogicalCapture} removes. */
export interface LogicalCaptureTarget {
  readonly slot: string;
  readonly publication: string;
}

/** How {@link uninstallLogicalCapture} runs. */
export interface LogicalCaptureUninstallOptions {
  /** Report the statements, change nothing. */
  readonly dryRun?: boolean;
  /** Drop the slot even while a process streams from it: that process (the daemon) is terminated first. */
  readonly force?: boolean;
}

/** What {@link uninstallLogicalCapture} did (or, on a dry run, would do). */
export interface LogicalCaptureUninstallResult {
  readonly statements: readonly string[];
  readonly slotDropped: boolean;
  readonly publicationDropped: boolean;
  /** Partitions whose truncate trigger was dropped. */
  readonly partitionTriggersDropped: number;
  /**
   * Set when nothing was done because a process streams from the slot (and
   * `force` was not given): its pid. Dropping the slot under a running daemon
   * would end its stream, and the changes not yet applied would be gone with the slot.
   */
  readonly refusedActivePid: number | null;
  /** A publication of that name exists but tablecache did not create it: kept. */
  readonly keptForeignPublication: boolean;
  readonly dryRun: boolean;
}

interface SlotRow {
  active_pid: number | null;
  ours: boolean;
}

async function readSlot(client: pg.ClientBase, slot: string): Promise<SlotRow | undefined> {
  const { rows } = await client.query<SlotRow>(
    `SELECT active_pid, slot_type = 'logical' AND plugin = 'pgoutput' AND database = current_database() AS ours
     FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  return rows[0];
}

// A daemon whose walsender was terminated may reconnect before the drop: terminate and retry, this often.
const FORCED_DROP_ATTEMPTS = 50;
const FORCED_DROP_PAUSE_MS = 100;

async function dropSlot(client: pg.ClientBase, slot: string, force: boolean): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (force) await client.query('SELECT pg_catalog.pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
    try {
      await client.query(`SELECT pg_catalog.pg_drop_replication_slot($1)`, [slot]);
      return;
    } catch (error) {
      // 55006: still active (the terminated walsender has not exited yet, or a daemon reconnected).
      if (!force || (error as { code?: string }).code !== '55006' || attempt >= FORCED_DROP_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, FORCED_DROP_PAUSE_MS));
    }
  }
}

/**
 * Removes the logical capture: drops the slot (releasing the WAL it
 * retains) and the publication, when install created it. Refuses, changing
 * nothing, while a process streams from the slot, unless `force`. A slot of
 * that name that is not a pgoutput slot of this database is left alone.
 *
 * @throws {@link InvalidArgumentError} for a malformed name; the driver's error when a statement fails.
 */
export async function uninstallLogicalCapture(client: pg.ClientBase, target: LogicalCaptureTarget, options: LogicalCaptureUninstallOptions = {}): Promise<LogicalCaptureUninstallResult> {
  checkSlotName(target.slot);
  checkPublicationName(target.publication);
  const dryRun = options.dryRun ?? false;
  const slot = await readSlot(client, target.slot);
  const base = { statements: [], slotDropped: false, publicationDropped: false, partitionTriggersDropped: 0, keptForeignPublication: false, dryRun };
  if (slot?.ours && slot.active_pid !== null && !options.force) return { ...base, refusedActivePid: slot.active_pid };
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT pg_catalog.obj_description(oid, 'pg_publication') AS comment FROM pg_catalog.pg_publication WHERE pubname = $1`,
    [target.publication],
  );
  const publicationOurs = rows[0]?.comment === PUBLICATION_COMMENT;
  const triggerStatements = await partitionTruncateUninstallStatements(client, target.publication);
  const statements = [
    ...(slot?.ours && slot.active_pid !== null ? [`SELECT pg_catalog.pg_terminate_backend(${slot.active_pid})`] : []),
    ...(slot?.ours ? [`SELECT pg_catalog.pg_drop_replication_slot(${quoteLiteral(target.slot)})`] : []),
    ...(publicationOurs ? [`DROP PUBLICATION IF EXISTS ${quoteIdentifier(target.publication)}`] : []),
    ...triggerStatements,
  ];
  if (!dryRun) {
    if (slot?.ours) await dropSlot(client, target.slot, options.force ?? false);
    if (publicationOurs) await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdentifier(target.publication)}`);
    for (const statement of triggerStatements) await client.query(statement);
  }
  return {
    ...base,
    statements,
    slotDropped: slot?.ours ?? false,
    publicationDropped: publicationOurs,
    partitionTriggersDropped: triggerStatements.filter((statement) => statement.startsWith('DROP TRIGGER')).length,
    keptForeignPublication: rows.length > 0 && !publicationOurs,
    refusedActivePid: null,
  };
}
