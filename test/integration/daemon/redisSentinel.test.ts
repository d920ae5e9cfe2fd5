import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { PrivateRedisSentinel } from '../../support/privateRedisTopology.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, SCHEMA, writeSeedConfig } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

/**
 * The daemon and `verify` on a primary with two replicas behind three
 * sentinels (issue #15): the daemon asks the sentinels for the primary, and
 * follows a failover (SIGKILL of the primary) to the promoted replica,
 * not ready meanwhile, then reloads and is equal to Postgres again.
 */

const USERS = 200;
/** The primary and replicas require it (the sentinels know it as auth-pass): AUTH works behind Sentinel. */
const PASSWORD = 'sentinel-secret';

let topology: PrivateRedisSentinel;
let db: TestDatabase;
let config: TablecacheConfig;
let configFile: string;
let removeConfig: () => void = () => {};
let daemon: DaemonProcess | undefined;

beforeAll(async () => {
  [topology, db] = await Promise.all([PrivateRedisSentinel.start({ replicas: 2, password: PASSWORD }), createTestDatabase('redis_sentinel')]);
  await createUsers(db.pool, USERS, 10);
  const sentinel = { sentinels: topology.sentinelUrls, name: topology.name };
  ({ config, file: configFile, remove: removeConfig } = writeSeedConfig({ postgresUrl: db.url, redisUrl: '', keyPrefix: 'tc-sentinel:', channel: 'tc_sentinel_test', redis: { url: undefined, sentinel, password: PASSWORD } }));
  await installConfigTriggers(db.pool, config);
}, 120_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await topology?.stop();
  removeConfig();
  await db?.drop();
});

async function expectEqual(): Promise<void> {
  const result = await waitFor('verify to find the table equal', async () => {
    const [users] = await verifyCache(config);
    return users?.equal ? users : undefined;
  }, { timeoutMs: 60_000, intervalMs: 500 });
  expect(result).toMatchObject({ postgresRecords: USERS, redisRecords: USERS });
}

describe('the daemon behind Redis Sentinel', () => {
  it('loads through the primary the sentinels name, follows its failover (not ready meanwhile, a redis_failover reload), and stays equal to Postgres', async () => {
    daemon = DaemonProcess.start(configFile);
    const url = await healthUrl(daemon);
    await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 50 });
    await expectEqual();

    const notReady: string[] = [];
    let stop = false;
    let writes = 0;
    const writer = (async () => {
      while (!stop) await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Write ' || $1::int WHERE user_id = 1 + $1::int % ${USERS}`, [writes++]);
    })();
    const watcher = (async () => {
      while (!stop) {
        const body = (await get(`${url}/readyz`).catch(() => undefined))?.body;
        if (body?.ready === false) notReady.push(...(body.reasons ?? []));
      }
    })();
    try {
      await waitFor('a few writes before the kill', () => writes > 20);
      const { killedPort, promotedPort } = await topology.killPrimary();
      expect(promotedPort).not.toBe(killedPort);
      await waitFor('/readyz to have been not ready', () => notReady.length > 0, { timeoutMs: 30_000 });
      const before = writes;
      await waitFor('writes after the failover', () => writes > before + 20, { timeoutMs: 30_000 });
    } finally {
      stop = true;
      await Promise.all([writer, watcher]);
    }
    await waitFor('/readyz ready again', async () => (await get(`${url}/readyz`)).body.ready === true, { timeoutMs: 60_000, intervalMs: 100 });
    await expectEqual();
    expect(notReady.join(' ')).toContain('Redis Sentinel master "tcprimary"');
    const metrics = parseMetrics((await get(`${url}/metrics`)).text);
    expect(metrics.get('tablecache_reloads_total{table="users",reason="redis_failover"}')).toBeGreaterThanOrEqual(1);
    expect(daemon.child.exitCode).toBeNull();
    // A daemon start, a failover and two comparisons: room for a loaded machine (every wait has its own deadline).
  }, 120_000);
});
