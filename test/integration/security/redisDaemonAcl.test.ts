import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, releaseDaemonTest, SCHEMA, writeSeedConfig } from '../daemon/daemonHarness.ts';

type User = Record<string, unknown>;

const USERS = 100;
const CHANNEL = 'tc_redis_daemon_acl';
// pino's numeric level of `warn`.
const WARN_LEVEL = 40;

// ACL users are server-wide, unlike the per-file key prefix: a random suffix keeps test files and runs apart.
const user = `tc_daemon_${randomBytes(4).toString('hex')}`;
const password = randomBytes(12).toString('hex');
const keyPrefix = uniqueRedisPrefix('daemon_acl');

/**
 * The daemon's permissions exactly as docs/security.md gives them: every
 * command the daemon (and `verify`) sends, directly or from its scripts, on
 * keys under its prefix only.
 */
function daemonAcl(prefix: string): string[] {
  return [
    'on',
    `>${password}`,
    'resetkeys',
    `~{${prefix}*`,
    'resetchannels',
    `&{${prefix}*`,
    '-@all',
    '+publish',
    '+time',
    '+evalsha',
    '+eval',
    '+evalsha_ro',
    '+eval_ro',
    '+fcall_ro',
    '+function|load',
    '+get',
    '+set',
    '+del',
    '+unlink',
    '+pexpire',
    '+pttl',
    '+hget',
    '+hmget',
    '+hset',
    '+hdel',
    '+hincrby',
    '+hexists',
    '+hlen',
    '+hkeys',
    
    '+sadd',
    '+srem',
    '+spop',
    '+scard',
    '+sismember',
    '+smembers',
    '+zadd',
    '+zrem',
    '+zrange',
    '+zrangebyscore',
    '+zcount',
    '+zcard',
    '+zmscore',
    '+ping',
    '+info',
    '+client|setname',
  ];
}

let db: TestDatabase;
let admin: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let removeConfig: () => void;
let daemon: DaemonProcess;

function urlAs(name: string): string {
  const url = new URL(testRedisUrl());
  url.username = name;
  url.password = password;
  return url.toString();
}

/** The ACL LOG entries of `name`: every command or key Redis refused it. */
async function refusals(name: string): Promise<string[]> {
  const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
  return entries
    .map((entry) => {
      const fields = new Map<string, unknown>();
      for (let i = 0; i < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
      return fields;
    })
    .filter((fields) => fields.get('username') === name)
    .map((fields) => `${String(fields.get('reason'))} ${String(fields.get('object'))}`);
}

beforeAll(async () => {
  db = await createTestDatabase('redis_daemon_acl');
  await createUsers(db.pool, USERS, 5);
  admin = new Redis(testRedisUrl(), { lazyConnect: true });
  await admin.connect();
  await admin.call('ACL', 'SETUSER', user, ...daemonAcl(keyPrefix));
  let file: string;
  ({ file, config, remove: removeConfig } = writeSeedConfig({ postgresUrl: db.url, redisUrl: urlAs(user), keyPrefix, channel: CHANNEL }));
  await installConfigTriggers(db.pool, config);
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 1, 15_000);
  reader = await openReader<User>({ redis: admin, table: 'users', keyPrefix });
}, 30_000);

afterAll(async () => {
  await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGTERM', reader, redis: undefined, keyPrefix, removeConfig });
  if (admin) {
    await admin.call('ACL', 'DELUSER', user);
    await deleteKeysWithPrefix(admin, keyPrefix);
    admin.disconnect();
  }
  await db?.drop();
});

describe('a daemon whose Redis user may only touch keys under its prefix', () => {
  it('loads the table, follows changes, marks barriers and passes verify, without one refusal in the ACL log', async () => {
    expect((await reader.info()).recordCount).toBe(USERS);
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed 3' WHERE user_id = 3`);
    await db.pool.query(`DELETE FROM ${SCHEMA}.users_cities WHERE user_id = 4`);
    await waitFor('user 3 renamed and user 4 gone', async () => {
      const [renamed, gone] = await reader.getMany([3, 4]);
      return renamed?.['user_name'] === 'Renamed 3' && gone === undefined;
    }, { timeoutMs: 10_000 });
    const barrierId = randomBytes(8).toString('hex');
    await db.pool.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ v: 1, op: 'B', id: barrierId })]);
    await waitFor('the barrier mark', async () => (await admin.exists(`{${keyPrefix}}barrier:${barrierId}`)) === 1, { timeoutMs: 10_000 });

    const [verified] = await verifyCache(config);
    expect(verified).toMatchObject({ equal: true, postgresRecords: USERS - 1, redisRecords: USERS - 1 });
    expect(await refusals(user)).toEqual([]);
    expect(daemon.logs.filter((line) => Number(line['level']) >= WARN_LEVEL)).toEqual([]);
  });

  it('cannot read or write a key outside its prefix, not even another prefix\'s table (NOPERM)', async () => {
    const other = uniqueRedisPrefix('daemon_acl_other');
    const direct = new Redis(urlAs(user), { lazyConnect: true, enableReadyCheck: false });
    await direct.connect();
    try {
      await expect(direct.set('outside-the-prefix', '1')).rejects.toThrow(/NOPERM/);
      await expect(direct.get('outside-the-prefix')).rejects.toThrow(/NOPERM/);
      await expect(direct.hset(new TableKeys('users', other).meta, 'gen', '1')).rejects.toThrow(/NOPERM/);
      // A script is no way around it: Redis checks every key a script touches.
      await expect(direct.eval("return redis.call('SET', KEYS[1], '1')", 1, 'outside-the-prefix')).rejects.toThrow(/NOPERM/);
      await expect(direct.call('FLUSHALL')).rejects.toThrow(/NOPERM/);
      await expect(direct.call('KEYS', '*')).rejects.toThrow(/NOPERM/);
      expect(await direct.hget(new TableKeys('users', keyPrefix).meta, 'format')).toBe('1');
    } finally {
      direct.disconnect();
    }
    expect(await admin.exists('outside-the-prefix')).toBe(0);
  });
});
