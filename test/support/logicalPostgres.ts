import pg from 'pg';
import type { TablecacheConfig } from '../../daemon/config/configSchema.ts';
import { logicalCaptureSpecFromConfig } from '../../daemon/config/logicalCaptureSpecFromConfig.ts';
import { installLogicalCapture } from '../../sql-triggers/logicalCapture.ts';
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

/** Runs `tablecache capture install` for the configuration: the publication of its source tables and its pgoutput slot. */
export async function installConfigCapture(pool: pg.Pool, config: TablecacheConfig): Promise<void> {
  const client = await pool.connect();
  try {
    await installLogicalCapture(client, logicalCaptureSpecFromConfig(config));
  } finally {
    client.release();
  }
}

/** A private wal_level=logical cluster as a test database: `drop` stops the cluster. */
export async function privateLogicalDatabase(): Promise<{ readonly url: string; readonly pool: pg.Pool; drop(): Promise<void> }> {
  const server = await startLogicalPostgres();
  const pool = privatePool(server.url);
  return {
    url: server.url,
    pool,
    async drop() {
      await pool.end();
      await server.stop();
    },
  };
}
