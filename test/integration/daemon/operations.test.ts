import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, releaseDaemonTest, installConfigTriggers, SCHEMA } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics, writeOperationsConfig } from './operationsHarness.ts';

type User = Record<string, unknown>;

const USERS = 200;
const CITIES = 10;
const CHANNEL = 'tc_operations_test';

let db: TestDatabase;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let configFile: string;
let removeConfig: () => void;
let keyPrefix: string;
let secret: string;
const daemons: DaemonProcess[] = [];

function startDaemon(): DaemonProcess {
  const daemon = DaemonProcess.start(configFile);
  daemons.push(daemon);
  return daemon;
}

/** The Postgres URL with a password: the test database trusts local connections, so a made-up one is never sent, and must never be printed. */
function withSecret(url: string): { url: string; secret: string } {
  const parsed = new URL(url);
  if (parsed.password === '') parsed.password = 'tc-secret-never-printed';
  return { url: parsed.toString(), secret: decodeURIComponent(parsed.password) };
}

async function barrier(): Promise<void> {
  const id = await sendBarrier(db.pool, { channel: CHANNEL });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
}

async function verifyClean(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, postgresRecords: USERS, redisRecords: USERS });
}

async function waitUntilReady(url: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${url}/readyz to answer 200`, async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs, intervalMs: 50 });
}

const leaseKey = () => `{${keyPrefix}users}:lease`;

beforeAll(async () => {
  db = await createTestDatabase('operations');
  await createUsers(db.pool, USERS, CITIES);
  keyPrefix = uniqueRedisPrefix('operations');
  const postgres = withSecret(db.url);
  secret = postgres.secret;
  ({ file: configFile, config, remove: removeConfig } = writeOperationsConfig({ postgresUrl: postgres.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL }));
  await installConfigTriggers(db.pool, config);
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
});

afterAll(async () => {
  await releaseDaemonTest({ daemons, stopWith: 'SIGKILL', reader, redis, keyPrefix, removeConfig });
  await db?.drop();
});

describe('a running daemon, as an operator sees it', () => {
  let daemon: DaemonProcess;
  let url: string;

  beforeAll(async () => {
    daemon = startDaemon();
    url = await healthUrl(daemon);
    await waitUntilReady(url);
  });

  it('answers /healthz with 200 while alive', async () => {
    expect(await get(`${url}/healthz`)).toMatchObject({ status: 200, body: { status: 'alive' } });
  });

  it('answers /readyz with 200 once every table is loaded and LISTEN is connected', async () => {
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 200, body: { ready: true, phase: 'running', reasons: [], tables: { users: { loaded: true } } } });
  });

  it('answers an unknown path with 404 listing the endpoints, and a POST with 405', async () => {
    const unknown = await get(`${url}/nope`);
    expect(unknown.status).toBe(404);
    expect(Object.keys(unknown.body.endpoints ?? {})).toEqual(['/healthz', '/readyz', '/metrics']);
    expect((await fetch(`${url}/readyz`, { method: 'POST' })).status).toBe(405);
  });

  it('counts notifications, refreshes, malformed payloads, loads and lag in /metrics', async () => {
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Metered' WHERE user_id = 7`);
    await db.pool.query(`UPDATE ${SCHEMA}.cities SET name = 'Metered City' WHERE city_id = 3`);
    await db.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, 'not a payload']);
    await barrier();
    const response = await get(`${url}/metrics`);
    expect(response.status).toBe(200);
    const metrics = parseMetrics(response.text);
    expect(metrics.get('tablecache_notifications_received_total{kind="change"}')).toBe(2);
    expect(metrics.get('tablecache_notifications_received_total{kind="malformed"}')).toBe(1);
    expect(metrics.get('tablecache_notifications_received_total{kind="barrier"}')).toBe(1);
    // User 7 and the 20 users of city 3.
    expect(metrics.get('tablecache_records_refreshed_total{table="users"}')).toBe(1 + USERS / CITIES);
    expect(metrics.get('tablecache_reloads_total{table="users",reason="start"}')).toBe(1);
    expect(metrics.get('tablecache_load_rows{table="users"}')).toBe(USERS);
    expect(metrics.get('tablecache_load_duration_seconds_count{table="users"}')).toBe(1);
    expect(metrics.get('tablecache_invalidation_lag_seconds_count')).toBe(2);
    expect(metrics.get('tablecache_batches_total')).toBeGreaterThanOrEqual(2);
    expect(metrics.get('tablecache_records{table="users"}')).toBe(USERS);
    expect(metrics.get('tablecache_ready')).toBe(1);
    expect(metrics.get('tablecache_errors_total{source="postgres"}')).toBe(0);
    expect(metrics.get('tablecache_reconnects_total{source="redis"}')).toBe(0);
    const usage = metrics.get('tablecache_notification_queue_usage');
    expect(usage).toBeGreaterThanOrEqual(0);
    expect(usage).toBeLessThan(0.5);
    expect(metrics.has('process_cpu_user_seconds_total')).toBe(true);
    expect(response.text).not.toMatch(/postgres:\/\/|redis:\/\//);
  });

  it('logs one JSON line per event that matters: load start and end with rows and rate, malformed payloads', () => {
    expect(daemon.logged('loading table')[0]).toMatchObject({ table: 'users', estimatedRows: expect.any(Number), reasons: ['start'] });
    expect(daemon.logged('table loaded')[0]).toMatchObject({ table: 'users', records: USERS, rowsPerSecond: expect.any(Number), service: 'tablecache-daemon' });
    expect(daemon.logged('skipped a malformed notification payload')[0]).toMatchObject({ payload: 'not a payload' });
  });

  it('never prints the password of a connection URL', async () => {
    const readiness = await get(`${url}/readyz`);
    const everything = [JSON.stringify(daemon.logs), daemon.stderrText, readiness.text, (await get(`${url}/metrics`)).text].join('\n');
    expect(everything).not.toContain(secret);
    expect(daemon.logged('starting')[0]).toMatchObject({ storage: expect.stringMatching(/^Redis at redis:\/\//) });
  });
});

describe('a standby daemon', () => {
  it('waits on the writer lease with /readyz 503, and takes over within seconds of the writer being SIGKILLed', async () => {
    const writer = daemons.at(-1)!;
    const standby = startDaemon();
    const standbyUrl = await healthUrl(standby);
    await waitFor('the standby to say it waits for the lease', async () => {
      const { status, body } = await get(`${standbyUrl}/readyz`);
      return status === 503 && /waiting for the writer lease of table users, held by .*standby/.test(body.reasons?.[0] ?? '');
    });
    expect(await get(`${standbyUrl}/healthz`)).toMatchObject({ status: 200 });

    expect(await writer.stop('SIGKILL')).toBeNull();
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'While nobody writes' WHERE user_id = 11`);
    // The lease lives 5 s without renewal; a deadline of 15 s leaves room for a slow machine.
    await waitUntilReady(standbyUrl, 15_000);
    await waitFor('user 11 renamed in Redis', async () => (await reader.get(11))?.['user_name'] === 'While nobody writes');
    await verifyClean();
    expect(standby.logged('writer lease taken')).toHaveLength(1);
  });
});

describe('stopping', () => {
  it('on SIGTERM finishes the step under way, stops listening, releases the lease and exits 0 within 10 s', async () => {
    const daemon = daemons.at(-1)!;
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Slow 13' WHERE user_id = 13`);
    await waitFor('the refresh of user 13 to be running in Postgres', async () => {
      const active = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'tablecache-daemon' AND state = 'active' AND query LIKE '%pg_sleep%'`,
      );
      return active.rowCount === 1;
    });
    daemon.child.kill('SIGTERM');
    const code = await waitFor('the daemon to exit', () => daemon.child.exitCode ?? undefined, { timeoutMs: 10_000 });
    expect(code).toBe(0);
    expect(await reader.get(13)).toMatchObject({ user_name: 'Slow 13' });
    expect(await redis.exists(leaseKey())).toBe(0);
    expect(daemon.logged('daemon stopped')).toHaveLength(1);
    // Back to a name that loads fast; the next daemon's load picks it up.
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'User 13' WHERE user_id = 13`);
  });

  it('on SIGINT releases the lease and exits 0', async () => {
    const daemon = startDaemon();
    await waitUntilReady(await healthUrl(daemon));
    expect(await redis.exists(leaseKey())).toBe(1);
    daemon.child.kill('SIGINT');
    const code = await waitFor('the daemon to exit', () => daemon.child.exitCode ?? undefined, { timeoutMs: 10_000 });
    expect(code).toBe(0);
    expect(await redis.exists(leaseKey())).toBe(0);
    await verifyClean();
  });
});
