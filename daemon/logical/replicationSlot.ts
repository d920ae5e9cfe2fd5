import type pg from 'pg';
import { parseLsn, type Lsn } from './lsn.ts';

/** The daemon's slot as `pg_replication_slots` has it. */
export interface SlotState {
  /** `pgoutput` for a slot the daemon can stream from. */
  readonly plugin: string | null;
  /** `lost`: invalidated (`max_slot_wal_keep_size`), it can no longer stream. */
  readonly walStatus: string | null;
  /** Where a new stream starts: every transaction committing before it was acknowledged. */
  readonly confirmedFlush: Lsn | null;
  /** The walsender streaming it now, or `null`. */
  readonly activePid: number | null;
}

/** Reads the slot's state; `null` when there is no such slot in this database. */
export async function readSlot(pool: pg.Pool, slot: string): Promise<SlotState | null> {
  const { rows } = await pool.query<{ plugin: string | null; wal_status: string | null; confirmed: string | null; active_pid: number | null }>(
    `SELECT plugin, wal_status, confirmed_flush_lsn::text AS confirmed, active_pid
       FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return { plugin: row.plugin, walStatus: row.wal_status, confirmedFlush: row.confirmed === null ? null : parseLsn(row.confirmed), activePid: row.active_pid };
}

/**
 * Creates the slot anew (dropping an invalidated one first): it starts at
 * the current end of WAL, so whatever its predecessor held back is gone and
 * every table reading it must be reloaded. Needs the REPLICATION attribute.
 */
export async function recreateSlot(pool: pg.Pool, slot: string): Promise<void> {
  await pool.query(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database() AND NOT active`,
    [slot],
  );
  await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
}

/**
 * Ends the walsender streaming the slot for another process (a daemon that
 * lost its writer leases, or died without its connection noticing): the
 * slot streams to one session at a time, and the holder of the leases is the
 * one that writes. Returns whether one was ended.
 */
export async function takeSlotOver(pool: pg.Pool, slot: string): Promise<boolean> {
  const { rows } = await pool.query<{ ended: boolean }>(
    `SELECT pg_terminate_backend(active_pid) AS ended FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL AND active_pid <> pg_backend_pid()`,
    [slot],
  );
  return rows[0]?.ended === true;
}

/** How far the slot's confirmed and restart positions trail the end of WAL, in bytes; `null` when there is no such slot. */
export async function readSlotDistances(pool: pg.Pool, slot: string): Promise<{ lagBytes: number; retainedWalBytes: number } | null> {
  const { rows } = await pool.query<{ lag: string | null; retained: string | null }>(
    `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::text AS lag, (pg_current_wal_lsn() - restart_lsn)::text AS retained
       FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined || row.lag === null || row.retained === null) return null;
  return { lagBytes: Number(row.lag), retainedWalBytes: Number(row.retained) };
}
