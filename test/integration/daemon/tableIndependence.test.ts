import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BarrierTimeoutError, waitForBarrier } from '../../../lib/client/barrier.ts';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { DaemonProcess, installConfigTriggers, releaseDaemonTest } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

/**
 * Issue #18, "one table never stalls another": each table steps on its
 * own, so a table whose `resolve` sleeps, whose query fails, or whose step
 * runs into the statement timeout holds back only itself; barriers name it;
 * its lag shows in a gauge and in /readyz.
 */

const CHANNEL = 'tc_table_independence_test';
/** Long enough that the slow step is certainly still running while the test looks; the timeout ends it. */
const REFRESH_TIMEOUT_MS = 15_000;

type Row = Record<string, unknown>;

let db: TestDatabase;
let redis: Redis;
let fast: TableReader<Row>;
let slow: TableReader<Row>;
let daemon: DaemonProcess;
let url: string;
let directory: string;
const keyPrefix = uniqueRedisPrefix('independence');

/**
 * The daemon's `resolve` of table slow sleeping in Postgres: its pid and start, or undefined.
 * Only while it waits in pg_sleep: a statement seen earlier, while its Parse
 * or Bind message ran, gets a new query_start when its Execute message starts.
 */
async function sleepingResolve(): Promise<{ pid: number; query_start: Date } | undefined> {
  const { rows } = await db.pool.query<{ pid: number; query_start: Date }>(
    `SELECT pid, query_start FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'tablecache-daemon' AND state = 'active'
        AND wait_event = 'PgSleep' AND query LIKE '%pg_sleep%'`,
  );
  return rows[0];
}

async function readiness(): Promise<{ status: number; reasons: string[] }> {
  const { status, body } = await get(`${url}/readyz`);
  return { status, reasons: body.reasons ?? [] };
}

async function metric(series: string): Promise<number | undefined> {
  return parseMetrics((await get(`${url}/metrics`)).text).get(series);
}

beforeAll(async () => {
  db = await createTestDatabase('table_independence');
  await db.pool.query(`
    CREATE SCHEMA shop;
    CREATE TABLE shop.fast (id integer PRIMARY KEY, v integer NOT NULL);
    CREATE TABLE shop.slow (id integer PRIMARY KEY, v integer NOT NULL);
    CREATE TABLE shop.fragile (id integer PRIMARY KEY, v integer NOT NULL, w integer NOT NULL DEFAULT 1);
    INSERT INTO shop.fast SELECT i, 1 FROM generate_series(1, 10) i;
    INSERT INTO shop.slow SELECT i, 1 FROM generate_series(1, 10) i;
    INSERT INTO shop.fragile SELECT i, 1 FROM generate_series(1, 10) i;
  `);
  directory = mkdtempSync(path.join(tmpdir(), 'tc-independence-'));
  const file = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    daemon: { batchWindowMs: 0, logLevel: 'info', http: { port: 0 }, refreshTimeoutMs: REFRESH_TIMEOUT_MS, maxLagMs: 1000, captureCheckIntervalMs: 1000 },
    tables: {
      fast: { query: 'SELECT id, v FROM shop.fast', primaryKey: 'id', sources: { 'shop.fast': { key: 'id' } } },
      slow: {
        query: 'SELECT id, v FROM shop.slow',
        primaryKey: 'id',
        sources: {
          // A key whose row has v < 0 takes ten minutes to resolve: a slow query that only the statement timeout ends.
          'shop.slow': { key: 'id', resolve: 'SELECT s.id FROM shop.slow s WHERE s.id = ANY ($1::int[]) AND (SELECT true FROM pg_sleep(CASE WHEN s.v < 0 THEN 600 ELSE 0 END))' },
        },
      },
      // Its query names column w, which a test drops.
      fragile: { query: 'SELECT id, v, w FROM shop.fragile', primaryKey: 'id', sources: { 'shop.fragile': { key: 'id' } } },
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  await installConfigTriggers(db.pool, parseConfig(raw, { file }));
  redis = new Redis(testRedisUrl());
  fast = await openReader<Row>({ redis, table: 'fast', keyPrefix });
  slow = await openReader<Row>({ redis, table: 'slow', keyPrefix });
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 3);
  url = await healthUrl(daemon);
});

afterAll(async () => {
  await slow?.close();
  await releaseDaemonTest({
    daemons: [daemon],
    stopWith: 'SIGKILL',
    reader: fast,
    redis,
    keyPrefix,
    removeConfig: () => rmSync(directory, { recursive: true, force: true }),
  });
  await db?.drop();
});

describe('tables that step independently', () => {
  it("shows another table's change while a slow resolve is still running, reports the slow table's lag, and ends the slow step at the statement timeout", async () => {
    await db.pool.query('UPDATE shop.slow SET v = -1 WHERE id = 1');
    const sleeping = await waitFor('the slow resolve to run', sleepingResolve, { timeoutMs: 20_000 });
    await db.pool.query('UPDATE shop.fast SET v = 42 WHERE id = 1');
    await waitFor('fast row 1 to show 42', async () => (await fast.get(1))?.['v'] === 42, { timeoutMs: 20_000 });
    // The slow step had not ended when the fast change became visible: the same statement still runs.
    expect(await sleepingResolve()).toEqual(sleeping);
    expect((await slow.get(1))?.['v']).toBe(1);

    // Its lag shows, and makes the daemon not ready, naming the table (maxLagMs is 1 s).
    await waitFor('the slow table lag gauge past 1 s', async () => ((await metric('tablecache_oldest_pending_change_seconds{table="slow"}')) ?? 0) > 1, {
      timeoutMs: 20_000,
    });
    await waitFor('/readyz to name the slow table', async () => {
      const now = await readiness();
      return now.status === 503 && now.reasons.some((reason) => reason.startsWith('table slow is behind'));
    });
    // Nothing of table fast waits (whether /readyz still names it depends on how long its change took on a busy machine).
    expect(await metric('tablecache_oldest_pending_change_seconds{table="fast"}')).toBe(0);

    // refreshTimeoutMs ends the step; the table is reloaded (which resolves nothing) and catches up.
    await waitFor(
      'the slow refresh to fail at the statement timeout',
      () => daemon.logs.some((line) => line['msg'] === 'failed refreshing table slow; will retry' && JSON.stringify(line).includes('statement timeout')),
      { timeoutMs: REFRESH_TIMEOUT_MS + 30_000 },
    );
    await waitFor('slow row 1 to show -1', async () => (await slow.get(1))?.['v'] === -1, { timeoutMs: 30_000 });
    await db.pool.query('UPDATE shop.slow SET v = 1 WHERE id = 1');
    await waitFor('slow row 1 to show 1', async () => (await slow.get(1))?.['v'] === 1, { timeoutMs: 30_000 });
    await waitFor('/readyz to be ready again (after the hysteresis)', async () => (await readiness()).status === 200, { timeoutMs: 30_000, intervalMs: 100 });
  });

  it('keeps refreshing the other tables while one fails, and times a barrier out naming the failing table', async () => {
    await db.pool.query('ALTER TABLE shop.fragile DROP COLUMN w');
    await db.pool.query('UPDATE shop.fragile SET v = 2 WHERE id = 1');
    await waitFor('the fragile table to fail', () => daemon.logs.some((line) => String(line['msg']).startsWith('failed refreshing table fragile') || String(line['msg']).startsWith('failed reloading table fragile')), {
      timeoutMs: 20_000,
    });
    await db.pool.query('UPDATE shop.fast SET v = 43 WHERE id = 2');
    const id = await sendBarrier(db.pool, { channel: CHANNEL });
    const timedOut = await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 4000 }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(timedOut).toBeInstanceOf(BarrierTimeoutError);
    const error = timedOut as BarrierTimeoutError;
    expect(error.code).toBe('TC_TIMEOUT');
    expect(error.behindTables.map(({ table }) => table)).toEqual(['fragile']);
    expect(error.message).toMatch(/table\(s\) fragile \(failing: /);
    // Everything committed before the barrier is visible in the tables that do not fail.
    expect((await fast.get(2))?.['v']).toBe(43);

    // Repaired, the table reloads, and a barrier is reached again.
    await db.pool.query('ALTER TABLE shop.fragile ADD COLUMN w integer NOT NULL DEFAULT 1');
    await waitForBarrier(redis, await sendBarrier(db.pool, { channel: CHANNEL }), { keyPrefix, timeoutMs: 30_000 });
  });
});
