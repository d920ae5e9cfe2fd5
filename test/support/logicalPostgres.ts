import pg from 'pg';
import { PrivatePostgres } from './privateServers.ts';

/** The settings a private cluster needs for the logical change source. */
export const LOGICAL_SETTINGS = { wal_level: 'logical', max_replication_slots: 10, max_wal_senders: 10, wal_sender_timeout: '60s' } as const;

/** A private Postgres with `wal_level = logical` (its own cluster: the shared one runs `replica`). */
export async function startLogicalPostgres(settings: Readonly<Record<string, string | number>> = {}): Promise<PrivatePostgres> {
  return PrivatePostgres.start({ ...LOGICAL_SETTINGS, ...settings });
}

/** A pool on a private cluster whose idle clients may be terminated by its restarts. */
export function privatePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  return pool;
}

/**
 * Creates the publication of `tables` (with their TRUNCATEs) and the
 * pgoutput slot, as `tablecache capture install` would, in plain SQL.
 */
export async function createPublicationAndSlot(pool: pg.Pool, name: string, tables: readonly string[]): Promise<void> {
  await pool.query(`CREATE PUBLICATION ${name} FOR TABLE ${tables.join(', ')}`);
  await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
}
