import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** A database that exists only for one test file. */
export interface TestDatabase {
  /** Connection URL of the database. */
  readonly url: string;
  /** A pool on the database, closed by `drop`. */
  readonly pool: pg.Pool;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Creates a fresh database on the test Postgres, so test files can run in
 * parallel without seeing each other's tables, triggers or notifications.
 */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const adminUrl = inject('postgresUrl');
  const name = `tc_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // DROP DATABASE ... WITH (FORCE) terminates the idle clients pool.end() has
  // not closed yet; their error must not become an unhandled 'error' event.
  pool.on('error', () => {});
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const dropper = new pg.Client({ connectionString: adminUrl });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
