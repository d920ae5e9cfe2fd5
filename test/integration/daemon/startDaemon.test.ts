import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import type { ConfigInput } from '../../../daemon/config/configSchema.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TableLoadedEvent } from '../../../daemon/daemonEvents.ts';
import { startDaemon, type RunningDaemon } from '../../../daemon/index.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, installConfigTriggers, SCHEMA, USERS_QUERY } from './daemonHarness.ts';

type User = Record<string, unknown>;

const CHANNEL = 'tc_embedded_test';

let db: TestDatabase;
let redis: Redis;
let reader: TableReader<User>;
let keyPrefix: string;
let configInput: ConfigInput;
const running: RunningDaemon[] = [];

beforeAll(async () => {
  db = await createTestDatabase('embedded');
  await createUsers(db.pool, 50, 5);
  keyPrefix = uniqueRedisPrefix('embedded');
  configInput = {
    postgres: { url: '${EMBEDDED_TEST_POSTGRES_URL}' },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    daemon: { batchWindowMs: 1, http: { port: 0 } },
    tables: {
      users: {
        query: USERS_QUERY,
        primaryKey: 'user_id',
        sources: {
          [`${SCHEMA}.users`]: { key: 'user_id' },
          [`${SCHEMA}.users_cities`]: { key: 'user_id' },
          [`${SCHEMA}.cities`]: { key: 'city_id', match: 'city_id' },
        },
      },
    },
  };
  await installConfigTriggers(db.pool, parseConfig(configInput, { file: 'startDaemon.test', env: { EMBEDDED_TEST_POSTGRES_URL: db.url } }));
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
});

afterAll(async () => {
  for (const daemon of running) await daemon.stop();
  await reader?.close();
  await deleteKeysWithPrefix(redis, keyPrefix);
  redis?.disconnect();
  await db?.drop();
});

describe('startDaemon (tablecache/daemon)', () => {
  it('runs the daemon in this process from a configuration object: loads, follows a change, serves /readyz, and stops', async () => {
    const loaded: TableLoadedEvent[] = [];
    const daemon = await startDaemon(configInput, {
      env: { EMBEDDED_TEST_POSTGRES_URL: db.url },
      logger: pino({ level: 'silent' }),
      http: true,
      standby: false,
      on: { loaded: (event) => loaded.push(event) },
    });
    running.push(daemon);
    expect(daemon.config.tables.map((table) => table.name)).toEqual(['users']);

    await waitFor('the embedded daemon to be ready', () => daemon.readiness().ready, { timeoutMs: 30_000 });
    await waitFor('the loaded event, heard by the listener given to startDaemon', () => loaded.length > 0);
    expect(loaded.map((event) => event.table)).toEqual(['users']);
    expect(await reader.get(3)).toMatchObject({ user_id: 3, user_name: 'User 3' });

    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Embedded 3' WHERE user_id = 3`);
    await waitFor('user 3 renamed, read through the client', async () => (await reader.get(3))?.['user_name'] === 'Embedded 3', { timeoutMs: 30_000 });

    const readyz = await fetch(`${daemon.httpUrl!}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await daemon.metrics.metrics()).toContain('tablecache_batches_total');

    await daemon.stop();
    expect(daemon.readiness()).toMatchObject({ ready: false, phase: 'stopped' });
    await expect(fetch(`${daemon.httpUrl!}/readyz`)).rejects.toThrow();
    // The lease was handed back: a second daemon takes the table at once, without waiting as a standby.
    const second = await startDaemon(configInput, { env: { EMBEDDED_TEST_POSTGRES_URL: db.url }, logger: pino({ level: 'silent' }), standby: false });
    running.push(second);
    expect(second.httpUrl).toBeNull();
    await second.stop();
    // Readers keep the published data after every daemon stopped.
    expect(await reader.get(3)).toMatchObject({ user_name: 'Embedded 3' });
  });

  it('names every bad key of the configuration object and what was expected', async () => {
    const bad = { ...configInput, daemon: { batchWindowMs: -1 }, tables: { users: { primaryKey: 'user_id', sources: {} } } } as unknown as ConfigInput;
    const error = await startDaemon(bad, { env: { EMBEDDED_TEST_POSTGRES_URL: db.url } }).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: 'TC_CONFIG_INVALID' });
    expect((error as Error).message).toContain('(configuration passed to startDaemon)');
    expect((error as Error).message).toContain('daemon.batchWindowMs');
  });
});
