import { Redis } from 'ioredis';
import { pino } from 'pino';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { TablecacheDaemon } from '../../../daemon/tablecacheDaemon.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { installConfigCapture, privatePool, startLogicalPostgres } from '../../support/logicalPostgres.ts';
import type { PrivatePostgres } from '../../support/privateServers.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, SCHEMA, writeSeedConfig } from './daemonHarness.ts';

/**
 * The logical change source (issue #16): the daemon streams a pgoutput slot
 * instead of LISTENing, on a private cluster with wal_level = logical.
 */

type User = Record<string, unknown>;
const CHANNEL = 'tc_logical';

let server: PrivatePostgres;
let pool: pg.Pool;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let removeConfig: () => void;
let daemon: TablecacheDaemon | undefined;
const keyPrefix = uniqueRedisPrefix('logical');
const loads: string[] = [];

async function startDaemon(): Promise<TablecacheDaemon> {
  const started = new TablecacheDaemon(config, { leaseTtlMs: 2_000, storageCheckIntervalMs: 200, ...(process.env['TC_DEBUG'] ? { logger: pino({ level: 'debug' }) } : {}) });
  started.on('loaded', ({ table }) => loads.push(`loaded ${table}`));
  started.on('reloaded', ({ table, kinds }) => loads.push(`reloaded ${table} (${kinds.join(', ')})`));
  await started.start();
  return started;
}

async function barrier(): Promise<void> {
  const id = await sendBarrier(pool, { channel: CHANNEL, method: 'logical' });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
}

async function verifyClean(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true });
}

beforeAll(async () => {
  server = await startLogicalPostgres();
  pool = privatePool(server.url);
  await createUsers(pool, 200, 5);
  const seed = writeSeedConfig({ postgresUrl: server.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL, daemon: { minReloadIntervalMs: 0 }, capture: { method: 'logical' } });
  config = seed.config;
  await installConfigCapture(pool, config);
  removeConfig = seed.remove;
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
  daemon = await startDaemon();
  await waitFor('the first load', () => loads.length > 0);
}, 60_000);

afterAll(async () => {
  await daemon?.close();
  await reader?.close();
  if (redis) {
    await deleteKeysWithPrefix(redis, keyPrefix);
    redis.disconnect();
  }
  removeConfig?.();
  await pool?.end();
  await server?.stop();
});

describe('the daemon on the logical change source', () => {
  it('applies updates, key changes, deletes and joins from the stream', async () => {
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed 7' WHERE user_id = 7`);
    await waitFor('user 7 renamed', async () => (await reader.get(7))?.['user_name'] === 'Renamed 7');
    await pool.query(`UPDATE ${SCHEMA}.cities SET name = 'Metropolis' WHERE city_id = 3`);
    await pool.query(`DELETE FROM ${SCHEMA}.users_cities WHERE user_id = 9`);
    await barrier();
    expect(await reader.get(2)).toMatchObject({ city_name: 'Metropolis' });
    expect(await reader.get(9)).toBeUndefined();
    await verifyClean();
  });

  it('reloads on TRUNCATE', async () => {
    const before = loads.length;
    await pool.query(`TRUNCATE ${SCHEMA}.users_cities`);
    await barrier();
    expect(loads.slice(before)).toEqual(['reloaded users (truncate)']);
    expect(await reader.get(2)).toBeUndefined();
    await pool.query(`INSERT INTO ${SCHEMA}.users_cities SELECT user_id, 1 + user_id % 5 FROM ${SCHEMA}.users`);
    await barrier();
    await verifyClean();
  });

  it('resumes from the slot after a restart without reloading, applying what was committed meanwhile', { timeout: 30_000 }, async () => {
    await barrier();
    await daemon!.close();
    daemon = undefined;
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'While down' WHERE user_id = 11`);
    const before = loads.length;
    daemon = await startDaemon();
    await waitFor('user 11 renamed', async () => (await reader.get(11))?.['user_name'] === 'While down');
    await barrier();
    expect(loads.slice(before)).toEqual([]);
    await verifyClean();
  });
});
