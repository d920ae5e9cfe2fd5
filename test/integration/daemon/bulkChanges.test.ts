import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { createUsers, DaemonProcess, releaseDaemonTest, installConfigTriggers, SCHEMA, writeSeedConfig } from './daemonHarness.ts';

type User = Record<string, unknown>;

const USERS = 100_000;
const CHANNEL = 'tc_daemon_bulk';

let db: TestDatabase;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let removeConfig: () => void;
let daemon: DaemonProcess;
let keyPrefix: string;

async function barrier(): Promise<void> {
  const id = await sendBarrier(db.pool, { channel: CHANNEL });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 30_000 });
}

async function expectClean(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, postgresRecords: USERS, redisRecords: USERS });
}

beforeAll(async () => {
  db = await createTestDatabase('daemon_bulk');
  await createUsers(db.pool, USERS, 1000);
  keyPrefix = uniqueRedisPrefix('daemon-bulk');
  let file: string;
  ({ file, config, remove: removeConfig } = writeSeedConfig({ postgresUrl: db.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL }));
  await installConfigTriggers(db.pool, config);
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix, timeoutMs: 10_000 });
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 1, 60_000);
});

afterAll(async () => {
  await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGTERM', reader, redis, keyPrefix, removeConfig });
  await db?.drop();
});

describe('tablecache daemon with bulk changes', () => {
  it('refreshes a 4,000-row UPDATE by its keys, without reloading the table', async () => {
    await db.pool.query(`UPDATE ${SCHEMA}.users SET nickname = 'bulk' WHERE user_id <= 4000`);
    await barrier();
    expect((await reader.getMany([1, 2000, 4000, 4001])).map((user) => user?.['user_nickname'])).toEqual(['bulk', 'bulk', 'bulk', null]);
    expect(daemon.logged('table reloaded')).toHaveLength(0);
    await expectClean();
  });

  it('makes a 100,000-row UPDATE fully visible, through one reload readers never see half done', async () => {
    let reading = true;
    const seenCounts = new Set<number>();
    const seenNames = new Set<unknown>();
    const readers = (async () => {
      while (reading) {
        seenCounts.add((await reader.info()).recordCount);
        seenNames.add((await reader.get(USERS))?.['user_name']);
      }
    })();
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = name || ' v2'`);
    await barrier();
    reading = false;
    await readers;
    expect([...seenCounts]).toEqual([USERS]);
    expect([...seenNames].every((name) => name === `User ${USERS}` || name === `User ${USERS} v2`)).toBe(true);
    expect((await reader.getMany([1, 50_000, 100_000])).map((user) => user?.['user_name'])).toEqual(['User 1 v2', 'User 50000 v2', 'User 100000 v2']);
    expect(daemon.logged('table reloaded')).toHaveLength(1);
    await expectClean();
  });
});
