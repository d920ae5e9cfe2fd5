import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, releaseDaemonTest, SCHEMA } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics, SLOW_USERS_QUERY } from './operationsHarness.ts';

/**
 * Issue #18, item 1: what a session that may only CONNECT can do to the
 * daemon by NOTIFYing on its channel: crash payloads, forged coarse floods,
 * key floods. And item 6: a resolve query returning NULL.
 */

type User = Record<string, unknown>;

const USERS = 200;
const CITIES = 10;
const CHANNEL = 'tc_hostile_test';
const MIN_RELOAD_INTERVAL_MS = 1_000;
const MAX_QUEUED_KEYS_PER_TABLE = 300;

let db: TestDatabase;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let configDirectory: string;
let configFile: string;
let keyPrefix: string;
const daemons: DaemonProcess[] = [];
let daemon: DaemonProcess;
let url: string;

async function barrier(): Promise<void> {
  const id = await sendBarrier(db.pool, { channel: CHANNEL });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
}

async function metrics(): Promise<Map<string, number>> {
  return parseMetrics((await get(`${url}/metrics`)).text);
}

async function notify(payload: string): Promise<void> {
  await db.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
}

async function waitUntilReady(timeoutMs = 20_000): Promise<void> {
  await waitFor(`${url}/readyz to answer 200`, async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs, intervalMs: 50 });
}

beforeAll(async () => {
  db = await createTestDatabase('hostile');
  await createUsers(db.pool, USERS, CITIES);
  keyPrefix = uniqueRedisPrefix('hostile');
  configDirectory = mkdtempSync(path.join(tmpdir(), 'tc-hostile-'));
  configFile = path.join(configDirectory, 'tablecache.json');
  const raw = {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    daemon: {
      batchWindowMs: 1,
      logLevel: 'info',
      http: { port: 0 },
      maxBatchKeys: 100,
      minReloadIntervalMs: MIN_RELOAD_INTERVAL_MS,
      maxQueuedKeysPerTable: MAX_QUEUED_KEYS_PER_TABLE,
    },
    tables: {
      users: {
        query: SLOW_USERS_QUERY,
        primaryKey: 'user_id',
        sources: {
          [`${SCHEMA}.users`]: { key: 'user_id' },
          [`${SCHEMA}.users_cities`]: { key: 'user_id' },
          // An outer join: a city without users resolves to one NULL.
          [`${SCHEMA}.cities`]: {
            key: 'city_id',
            resolve: `SELECT uc.user_id FROM unnest($1::int[]) AS k(city_id) LEFT JOIN ${SCHEMA}.users_cities uc USING (city_id)`,
          },
        },
      },
    },
  };
  writeFileSync(configFile, JSON.stringify(raw));
  config = parseConfig(raw, { file: configFile });
  await installConfigTriggers(db.pool, config);
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
  daemon = DaemonProcess.start(configFile);
  daemons.push(daemon);
  url = await healthUrl(daemon);
  await waitUntilReady();
});

afterAll(async () => {
  await releaseDaemonTest({ daemons, stopWith: 'SIGKILL', reader, redis, keyPrefix, removeConfig: () => rmSync(configDirectory, { recursive: true, force: true }) });
  await db?.drop();
});

describe('forged coarse payloads, 50 a second', () => {
  it('cause at most one reload per interval, leave /readyz ready, and real changes still appear', async () => {
    const reloadsBefore = daemon.logged('table reloaded').length;
    const readiness: number[] = [];
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        readiness.push((await get(`${url}/readyz`)).status);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const started = Date.now();
    const forged = [`{"v":1,"t":"${SCHEMA}.users","op":"X","xid":"1","ts":1,"reason":"error"}`, '{"v":2}', `{"v":1,"t":"${SCHEMA}.cities","op":"T","xid":"1","ts":1}`];
    // 150 payloads, paced at about 50 a second (the pace only shapes the load; nothing below depends on it).
    for (let i = 0; i < 150; i++) {
      await notify(forged[i % forged.length]!);
      if (i % 30 === 0) await db.pool.query(`UPDATE ${SCHEMA}.users SET name = $1 WHERE user_id = 5`, [`During the flood ${i}`]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitFor('the last rename during the flood in Redis', async () => (await reader.get(5))?.['user_name'] === 'During the flood 120');
    // A barrier waits for the deferred reload: after it, every reload the flood caused has happened.
    await barrier();
    const durationMs = Date.now() - started;
    flooding = false;
    await sampler;

    const reloaded = daemon.logged('table reloaded').slice(reloadsBefore);
    const reloads = reloaded.length;
    expect(reloads).toBeGreaterThanOrEqual(1);
    // Their reasons tell a reload the throttle let through from one it does not govern (a lost lease or LISTEN connection).
    expect(reloads, `reloads in ${durationMs} ms: ${JSON.stringify(reloaded.map((line) => line['reasons']))}`).toBeLessThanOrEqual(
      Math.ceil(durationMs / MIN_RELOAD_INTERVAL_MS) + 1,
    );
    expect(readiness.length).toBeGreaterThan(0);
    expect(readiness.filter((status) => status !== 200)).toEqual([]);
    expect(daemon.child.exitCode).toBeNull();
    const [result] = await verifyCache(config);
    expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, redisRecords: USERS });
  });
});

describe('a flood of key payloads', () => {
  it('past daemon.maxQueuedKeysPerTable becomes one reload (reason key_flood), shown in /readyz while it is pending', async () => {
    // A refresh that takes 2 s: the flood queues behind it.
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Slow 13' WHERE user_id = 13`);
    await waitFor('the refresh of user 13 to be running in Postgres', async () => {
      const active = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tablecache-daemon' AND state = 'active' AND query LIKE '%pg_sleep%'`,
      );
      return active.rowCount === 1;
    });
    // 20 payloads of 100 keys that name no user: 2,000 keys, in one transaction.
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      for (let part = 0; part < 20; part++) {
        const keys = Array.from({ length: 100 }, (_, i) => [100_000 + part * 100 + i]);
        await client.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ v: 1, t: `${SCHEMA}.users`, op: 'U', xid: '1', ts: Date.now(), c: ['user_id'], k: keys })]);
      }
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const notReady = await waitFor('/readyz to name the key flood', async () => {
      const { status, body } = await get(`${url}/readyz`);
      return status === 503 && (body.reasons ?? []).some((reason) => reason.includes(`more than ${MAX_QUEUED_KEYS_PER_TABLE} changed keys`)) && body;
    });
    expect((notReady.reasons ?? []).join('\n')).toMatch(/table users may be behind/);
    expect((await metrics()).get('tablecache_queued_keys{table="users"}')).toBeLessThanOrEqual(MAX_QUEUED_KEYS_PER_TABLE);
    await waitUntilReady();
    await barrier();
    expect((await metrics()).get('tablecache_reloads_total{table="users",reason="key_flood"}')).toBeGreaterThanOrEqual(1);
    expect(await reader.get(13)).toMatchObject({ user_name: 'Slow 13' });
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'User 13' WHERE user_id = 13`);
    await waitFor('user 13 back to a fast name', async () => (await reader.get(13))?.['user_name'] === 'User 13', { timeoutMs: 20_000 });
  });
});

describe('a resolve query returning NULL', () => {
  it('is logged and counted, not silently dropped', async () => {
    await db.pool.query(`INSERT INTO ${SCHEMA}.cities VALUES (999, 'Nobody lives here')`);
    await barrier();
    expect((await metrics()).get('tablecache_resolve_null_keys_total{table="users"}')).toBe(1);
    expect(daemon.logged('the resolve query returned NULL primary keys; those rows name no record and were skipped')[0]).toMatchObject({
      table: 'users',
      source: `${SCHEMA}.cities`,
      nullRows: 1,
    });
  });
});

describe('a hostile payload on the channel', () => {
  it('of 1,500 nested arrays (3 KB) crashes neither the daemon nor its standby (before and after it takes over): counted as malformed, logged, and real changes still arrive', async () => {
    const standby = DaemonProcess.start(configFile);
    daemons.push(standby);
    const standbyUrl = await healthUrl(standby);
    await waitFor('the standby to wait for the lease', async () => /waiting for the writer lease/.test((await get(`${standbyUrl}/readyz`)).body.reasons?.[0] ?? ''));
    const before = (await metrics()).get('tablecache_notifications_received_total{kind="malformed"}')!;

    const nested = `${'['.repeat(1500)}${']'.repeat(1500)}`;
    await notify(nested);
    await notify(`{"v":1,"t":"${SCHEMA}.users","op":"U","xid":"1","ts":1,"c":["user_id"],"k":[${nested}]}`);
    await barrier();

    expect(daemon.child.exitCode).toBeNull();
    expect(standby.child.exitCode).toBeNull();
    expect((await get(`${standbyUrl}/healthz`)).status).toBe(200);
    expect((await metrics()).get('tablecache_notifications_received_total{kind="malformed"}')).toBe(before + 2);
    const logged = daemon.logged('skipped a malformed notification payload').slice(-2);
    expect(logged.map((line) => line['problem'])).toEqual([expect.stringMatching(/nested deeper than/), expect.stringMatching(/nested deeper than/)]);
    expect(String(logged[0]!['payload']).length).toBeLessThanOrEqual(201);

    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'After the crash payload' WHERE user_id = 3`);
    await waitFor('user 3 renamed in Redis', async () => (await reader.get(3))?.['user_name'] === 'After the crash payload');

    // The standby, once it writes (and LISTENs), survives the same payload.
    await daemon.stop('SIGKILL');
    await waitFor('the standby to take over', async () => (await get(`${standbyUrl}/readyz`)).status === 200, { timeoutMs: 20_000, intervalMs: 50 });
    await notify(nested);
    await barrier();
    expect(standby.child.exitCode).toBeNull();
    expect(parseMetrics((await get(`${standbyUrl}/metrics`)).text).get('tablecache_notifications_received_total{kind="malformed"}')).toBe(1);
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'After the takeover' WHERE user_id = 3`);
    await waitFor('user 3 renamed again in Redis', async () => (await reader.get(3))?.['user_name'] === 'After the takeover');
  });
});
