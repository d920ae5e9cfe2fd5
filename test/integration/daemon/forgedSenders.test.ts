import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, releaseDaemonTest, SCHEMA, writeSeedConfig } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

/**
 * Issue #18, item 1: with `daemon.verifySenders`, a role that may CONNECT
 * (and so NOTIFY on the channel) but not write the source tables cannot make
 * the daemon refresh or reload anything.
 */

type User = Record<string, unknown>;

const USERS = 50;
const CHANNEL = 'tc_forged_senders_test';
const FORGER = `tc_forger_${randomBytes(4).toString('hex')}`;

let db: TestDatabase;
let admin: pg.Client;
let forger: pg.Client;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let removeConfig: () => void;
let keyPrefix: string;
let daemon: DaemonProcess;
let url: string;

async function barrier(): Promise<void> {
  const id = await sendBarrier(db.pool, { channel: CHANNEL });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
}

async function metrics(): Promise<Map<string, number>> {
  return parseMetrics((await get(`${url}/metrics`)).text);
}

beforeAll(async () => {
  db = await createTestDatabase('forged_senders');
  await createUsers(db.pool, USERS, 5);
  // Roles belong to the cluster, shared with other test files: a unique name, dropped at the end.
  await db.pool.query(`CREATE ROLE ${FORGER} LOGIN`);
  const forgerUrl = new URL(db.url);
  forgerUrl.username = FORGER;
  forgerUrl.password = '';
  forger = new pg.Client({ connectionString: forgerUrl.toString() });
  await forger.connect();
  keyPrefix = uniqueRedisPrefix('forged');
  let file: string;
  ({ file, config, remove: removeConfig } = writeSeedConfig({ postgresUrl: db.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL, daemon: { verifySenders: true, minReloadIntervalMs: 0 } }));
  await installConfigTriggers(db.pool, config);
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
  daemon = DaemonProcess.start(file);
  url = await healthUrl(daemon);
  await waitFor('/readyz 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 20_000 });
});

afterAll(async () => {
  await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGKILL', reader, redis, keyPrefix, removeConfig });
  await forger?.end().catch(() => {});
  await db?.pool.query(`DROP ROLE IF EXISTS ${FORGER}`).catch(() => {});
  await db?.drop();
});

describe('daemon.verifySenders', () => {
  it('skips payloads from a role that may connect but not write the source tables, counting them as rejected', async () => {
    expect((await db.pool.query(`SELECT has_table_privilege('${FORGER}', '${SCHEMA}.users', 'UPDATE') AS may`)).rows[0].may).toBe(false);
    const before = await metrics();
    const reloadsBefore = daemon.logged('table reloaded').length;
    const forged = [
      `{"v":1,"t":"${SCHEMA}.users","op":"X","xid":"1","ts":1,"reason":"error"}`,
      `{"v":1,"t":"${SCHEMA}.cities","op":"T","xid":"1","ts":1}`,
      `{"v":1,"t":"${SCHEMA}.users","op":"U","xid":"1","ts":1,"c":["user_id"],"k":[[1],[2],[3]]}`,
      '{"v":2}',
    ];
    for (const payload of forged) await forger.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
    // A real change after them, by a role that may write: accepted.
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Really renamed' WHERE user_id = 4`);
    await barrier();

    expect(await reader.get(4)).toMatchObject({ user_name: 'Really renamed' });
    const after = await metrics();
    expect(after.get('tablecache_notifications_received_total{kind="rejected"}')).toBe(forged.length);
    expect(after.get('tablecache_notifications_received_total{kind="change"}')! - before.get('tablecache_notifications_received_total{kind="change"}')!).toBe(1);
    expect(after.get('tablecache_refreshed_keys_total{table="users"}')! - (before.get('tablecache_refreshed_keys_total{table="users"}') ?? 0)).toBe(1);
    expect(daemon.logged('table reloaded').length).toBe(reloadsBefore);
    expect(daemon.logged('rejected notifications from a session whose role may not write the table they name')[0]).toMatchObject({ processId: expect.any(Number) });
  });

  it('accepts the same payloads once the role may write the table', async () => {
    await db.pool.query(`GRANT UPDATE ON ${SCHEMA}.users TO ${FORGER}`);
    await forger.query('SELECT pg_notify($1, $2)', [CHANNEL, `{"v":1,"t":"${SCHEMA}.users","op":"U","xid":"1","ts":1,"c":["user_id"],"k":[[1]]}`]);
    const before = (await metrics()).get('tablecache_notifications_received_total{kind="change"}')!;
    // The rejection was cached for at most a second: wait on the outcome, not the clock.
    await waitFor('a payload of the now-privileged role to be accepted', async () => {
      await forger.query('SELECT pg_notify($1, $2)', [CHANNEL, `{"v":1,"t":"${SCHEMA}.users","op":"U","xid":"1","ts":1,"c":["user_id"],"k":[[1]]}`]);
      await barrier();
      return (await metrics()).get('tablecache_notifications_received_total{kind="change"}')! > before;
    });
  });
});
