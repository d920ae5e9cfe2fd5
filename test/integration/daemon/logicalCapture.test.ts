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
import { DaemonMetrics } from '../../../daemon/http/daemonMetrics.ts';
import { createUsers, DaemonProcess, SCHEMA, writeSeedConfig } from './daemonHarness.ts';

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
let configFile: string;
let daemon: TablecacheDaemon | undefined;
const keyPrefix = uniqueRedisPrefix('logical');
const loads: string[] = [];

async function startDaemon(): Promise<TablecacheDaemon> {
  const started = new TablecacheDaemon(config, { leaseTtlMs: 2_000, storageCheckIntervalMs: 200, captureCheckIntervalMs: 200, ...(process.env['TC_DEBUG'] ? { logger: pino({ level: 'debug' }) } : {}) });
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
  server = await startLogicalPostgres({ max_slot_wal_keep_size: '1MB' });
  pool = privatePool(server.url);
  await createUsers(pool, 200, 5);
  const seed = writeSeedConfig({ postgresUrl: server.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL, daemon: { minReloadIntervalMs: 0, leaseTtlMs: 2_000 }, capture: { method: 'logical' } });
  config = seed.config;
  configFile = seed.file;
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

  it('meets a barrier sent inside the writing transaction after that transaction\'s changes', async () => {
    const client = await pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE ${SCHEMA}.users SET name = 'Same transaction' WHERE user_id = 21`);
      id = await sendBarrier(client, { channel: CHANNEL, method: 'logical' });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
    expect(await reader.get(21)).toMatchObject({ user_name: 'Same transaction' });
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

  it('reconnects after its walsender is terminated during writes, replaying from the slot without a reload', { timeout: 30_000 }, async () => {
    await barrier();
    const before = loads.length;
    const { generation } = await reader.info();
    const writes = (async () => {
      for (let i = 0; i < 50; i++) await pool.query(`UPDATE ${SCHEMA}.users SET nickname = $1 WHERE user_id = $2`, [`walsender ${i}`, 1 + (i % 20)]);
    })();
    const pid = await waitFor('the slot streaming', async () => (await pool.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [config.capture.slot])).rows[0]?.pid ?? undefined);
    await pool.query('SELECT pg_terminate_backend($1)', [pid]);
    await writes;
    await waitFor('a new walsender', async () => {
      const { rows } = await pool.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [config.capture.slot]);
      return rows[0]?.pid !== null && rows[0]?.pid !== pid;
    });
    await barrier();
    await verifyClean();
    expect(loads.slice(before)).toEqual([]);
    expect((await reader.info()).generation).toBe(generation);
  });

  it('comes back after a Postgres restart and applies what was committed after it', { timeout: 60_000 }, async () => {
    await barrier();
    await server.restart('immediate');
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'After restart' WHERE user_id = 13`);
    await waitFor('user 13 renamed', async () => (await reader.get(13))?.['user_name'] === 'After restart', { timeoutMs: 30_000 });
    await barrier();
    await verifyClean();
  });

  it('resumes from the slot after a restart without reloading, applying what was committed meanwhile', { timeout: 30_000 }, async () => {
    await barrier();
    const { generation } = await reader.info();
    await daemon!.close();
    daemon = undefined;
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'While down' WHERE user_id = 11`);
    const before = loads.length;
    daemon = await startDaemon();
    await waitFor('user 11 renamed', async () => (await reader.get(11))?.['user_name'] === 'While down');
    await barrier();
    expect(loads.slice(before)).toEqual([]);
    expect((await reader.info()).generation).toBe(generation);
    await verifyClean();
  });

  it('exports the slot lag, retained WAL and the time since the last message', async () => {
    await barrier();
    const metrics = new DaemonMetrics(daemon!, { processMetrics: false });
    const text = await metrics.metrics();
    metrics.close();
    for (const name of ['tablecache_capture_slot_lag_bytes', 'tablecache_capture_slot_retained_wal_bytes', 'tablecache_capture_seconds_since_last_message']) {
      expect(text).toMatch(new RegExp(`^${name} \\d`, 'm'));
    }
  });

  /** Waits until /readyz names `source` as not captured, for `detail`, with the command that fixes it. */
  async function waitForCaptureProblem(source: string, detail: string): Promise<void> {
    await waitFor(`a capture problem for ${source} (${detail})`, () => {
      const { ready, reasons } = daemon!.readiness();
      return !ready && reasons.some((reason) => reason.includes(`changes to source table ${source} are not captured (${detail}`) && reason.includes('tablecache capture install'));
    });
  }

  it('is not ready while a source table is left out of the publication, naming capture install, and reloads once it is back', { timeout: 30_000 }, async () => {
    await barrier();
    const before = loads.length;
    await pool.query(`ALTER PUBLICATION ${config.capture.publication} DROP TABLE ${SCHEMA}.cities`);
    await waitForCaptureProblem(`${SCHEMA}.cities`, `the publication ${config.capture.publication} does not publish it`);
    // Postgres sends this change to nobody: only the reload brings it.
    await pool.query(`UPDATE ${SCHEMA}.cities SET name = 'Unpublished' WHERE city_id = 2`);
    await installConfigCapture(pool, config);
    await waitFor('the reload', () => loads.length > before);
    expect(loads.slice(before)).toEqual(['reloaded users (capture_restored)']);
    await waitFor('ready again', () => daemon!.readiness().ready);
    await barrier();
    await verifyClean();
  });

  it('is not ready while a source table\'s replica identity gives no old key, and reloads once it does again', { timeout: 30_000 }, async () => {
    await barrier();
    const before = loads.length;
    await pool.query(`ALTER TABLE ${SCHEMA}.users_cities REPLICA IDENTITY NOTHING`);
    await waitForCaptureProblem(`${SCHEMA}.users_cities`, `${SCHEMA}.users_cities has REPLICA IDENTITY NOTHING`);
    await pool.query(`ALTER TABLE ${SCHEMA}.users_cities REPLICA IDENTITY DEFAULT`);
    await waitFor('a capture_restored reload', () => loads.slice(before).some((load) => load.includes('capture_restored')));
    await waitFor('ready again', () => daemon!.readiness().ready);
    await barrier();
    await verifyClean();
  });

  it('is not ready while the publication is dropped; once it is created again, makes a new slot and reloads', { timeout: 60_000 }, async () => {
    await barrier();
    const before = loads.length;
    await pool.query(`DROP PUBLICATION ${config.capture.publication}`);
    await waitForCaptureProblem(`${SCHEMA}.users`, `the publication ${config.capture.publication} does not exist`);
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'No publication' WHERE user_id = 23`);
    await installConfigCapture(pool, config);
    // The slot decodes that update with the publications of its time (none): only a new slot gets past it.
    await waitFor('the slot created anew', () => loads.slice(before).some((load) => load.includes('slot_recreated')), { timeoutMs: 30_000 });
    await waitFor('ready again', () => daemon!.readiness().ready, { timeoutMs: 20_000 });
    await barrier();
    expect(await reader.get(23)).toMatchObject({ user_name: 'No publication' });
    await verifyClean();
  });

  it('lets a standby take the slot over when the writer dies, resuming without a reload', { timeout: 60_000 }, async () => {
    await barrier();
    await daemon!.close();
    daemon = undefined;
    const writer = DaemonProcess.start(configFile);
    try {
      await writer.waitForLog('daemon started');
      await pool.query(`UPDATE ${SCHEMA}.users SET name = 'By the writer' WHERE user_id = 19`);
      await barrier();
      const before = loads.length;
      const standby = new TablecacheDaemon(config, { standby: true, leaseTtlMs: 2_000 });
      standby.on('loaded', ({ table }) => loads.push(`loaded ${table}`));
      const takingOver = standby.start();
      await writer.stop('SIGKILL');
      await takingOver;
      daemon = standby;
      await pool.query(`UPDATE ${SCHEMA}.users SET name = 'By the standby' WHERE user_id = 19`);
      await barrier();
      expect(await reader.get(19)).toMatchObject({ user_name: 'By the standby' });
      expect(loads.slice(before)).toEqual([]);
      await verifyClean();
    } finally {
      await writer.stop('SIGKILL');
    }
  });

  it('refuses to start while the publication lacks a source table, naming the command that adds it', async () => {
    await daemon!.close();
    daemon = undefined;
    await pool.query(`ALTER PUBLICATION ${config.capture.publication} DROP TABLE ${SCHEMA}.cities`);
    await expect(startDaemon()).rejects.toMatchObject({
      code: 'TC_CONFIG_INVALID',
      message: expect.stringContaining(`does not publish source table(s) ${SCHEMA}.cities, so their changes would never reach the daemon: run \`tablecache capture install\``),
    });
    await installConfigCapture(pool, config);
    daemon = await startDaemon();
    await barrier();
  });

  it('reloads when its slot was invalidated while it was down, creating the slot anew', { timeout: 60_000 }, async () => {
    await barrier();
    await daemon!.close();
    daemon = undefined;
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'Lost slot' WHERE user_id = 17`);
    // Past max_slot_wal_keep_size (1 MB here) and a checkpoint, the slot loses its WAL.
    await waitFor('the slot invalidated', async () => {
      await pool.query('CREATE TABLE IF NOT EXISTS filler (x text); INSERT INTO filler SELECT repeat(\'x\', 1000) FROM generate_series(1, 2000); SELECT pg_switch_wal(); CHECKPOINT');
      const { rows } = await pool.query<{ status: string }>('SELECT wal_status AS status FROM pg_replication_slots WHERE slot_name = $1', [config.capture.slot]);
      return rows[0]?.status === 'lost';
    }, { timeoutMs: 30_000, intervalMs: 10 });
    const before = loads.length;
    daemon = await startDaemon();
    await waitFor('a load', () => loads.length > before);
    expect(loads.slice(before)).toEqual(['loaded users']);
    expect(await reader.get(17)).toMatchObject({ user_name: 'Lost slot' });
    await pool.query(`UPDATE ${SCHEMA}.users SET name = 'New slot' WHERE user_id = 17`);
    await barrier();
    expect(await reader.get(17)).toMatchObject({ user_name: 'New slot' });
    await verifyClean();
  });
});

describe('the daemon on the logical change source, when its slot cannot be created again', () => {
  it('exits with code 5 (TC_CAPTURE_SETUP) naming max_replication_slots, instead of retrying forever', { timeout: 60_000 }, async () => {
    await daemon?.close();
    daemon = undefined;
    const child = DaemonProcess.start(configFile);
    try {
      await child.waitForLog('daemon started');
      const { rows } = await pool.query<{ free: number }>(`SELECT current_setting('max_replication_slots')::int - count(*)::int AS free FROM pg_replication_slots`);
      // The slot is dropped and every place it held taken in one statement, so the daemon never finds room to create it again.
      await waitFor('the slot dropped and every slot taken', async () => {
        await pool.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [config.capture.slot]);
        await pool.query(
          `SELECT pg_drop_replication_slot('${config.capture.slot}'); SELECT pg_create_logical_replication_slot('filler_' || i, 'pgoutput') FROM generate_series(1, ${rows[0]!.free + 1}) i`,
        );
        return true;
      }, { intervalMs: 5 });
      expect(await child.waitForExit(), child.stderrText + JSON.stringify(child.logs.slice(-8))).toBe(5);
      expect(child.stderrText).toMatch(/every replication slot is taken.*max_replication_slots/);
    } finally {
      await child.stop('SIGKILL');
      await pool.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'filler_%'`);
    }
  });
});
