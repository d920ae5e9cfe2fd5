import pg from 'pg';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { resolveTestPostgres } from '../../support/serviceResolution.ts';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('resolveTestPostgres', () => {
  test('takes TABLECACHE_TEST_POSTGRES_URL as given, with nothing to stop', async () => {
    vi.stubEnv('TABLECACHE_TEST_FORCE_EMBEDDED', '');
    vi.stubEnv('TABLECACHE_TEST_POSTGRES_URL', 'postgres://someone@db.example:6543/app');
    const service = await resolveTestPostgres();
    expect(service).toMatchObject({ url: 'postgres://someone@db.example:6543/app', source: 'environment' });
    await service.stop();
  });

  test('with TABLECACHE_TEST_FORCE_EMBEDDED=1 starts a working embedded Postgres that stop() shuts down', async () => {
    vi.stubEnv('TABLECACHE_TEST_FORCE_EMBEDDED', '1');
    const service = await resolveTestPostgres();
    expect(service.source).toBe('embedded');
    try {
      const client = new pg.Client({ connectionString: service.url });
      await client.connect();
      try {
        await client.query('CREATE TABLE probe (id int PRIMARY KEY, name text)');
        await client.query(`INSERT INTO probe VALUES (1, 'é')`);
        const { rows } = await client.query(`SELECT name, current_setting('server_encoding') AS encoding FROM probe`);
        expect(rows).toEqual([{ name: 'é', encoding: 'UTF8' }]);
      } finally {
        await client.end();
      }
    } finally {
      await service.stop();
    }
    const stopped = new pg.Client({ connectionString: service.url, connectionTimeoutMillis: 2000 });
    await expect(stopped.connect()).rejects.toThrow(/ECONNREFUSED/);
  });
});
