import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { PrivateRedis } from '../../support/privateServers.ts';
import { waitFor } from '../../support/waitFor.ts';
import { DaemonProcess, installConfigTriggers } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

const ROWS = 20_000;
const KEY_PREFIX = 'tablecache:';

let db: TestDatabase;
let server: PrivateRedis;
let admin: Redis;
let config: TablecacheConfig;
let configFile: string;
let directory: string;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase('redis_eviction');
  // About 300 bytes per record: the table takes several MB in Redis.
  await db.pool.query(`
    CREATE TABLE items (item_id integer PRIMARY KEY, payload text NOT NULL);
    INSERT INTO items SELECT i, repeat(md5(i::text), 9) FROM generate_series(1, ${ROWS}) i;`);
  server = await PrivateRedis.start();
  admin = new Redis(server.url);
  directory = mkdtempSync(path.join(tmpdir(), 'tc-eviction-'));
  configFile = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: db.url },
    redis: { url: server.url, keyPrefix: KEY_PREFIX },
    triggers: { schema: 'tablecache', channel: 'tc_eviction_test' },
    daemon: { batchWindowMs: 1, logLevel: 'info', http: { port: 0 } },
    tables: { items: { query: 'SELECT * FROM items', primaryKey: 'item_id', sources: { items: { key: 'item_id' } } } },
  };
  writeFileSync(configFile, JSON.stringify(raw));
  config = parseConfig(raw, { file: configFile });
  await installConfigTriggers(db.pool, config);
}, 60_000);

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  admin?.disconnect();
  await server?.stop();
  rmSync(directory, { recursive: true, force: true });
  await db?.drop();
});

async function startReadyDaemon(): Promise<{ daemon: DaemonProcess; url: string }> {
  const daemon = DaemonProcess.start(configFile);
  daemons.push(daemon);
  const url = await healthUrl(daemon);
  await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 50 });
  return { daemon, url };
}

const storageLostReloads = async (url: string) => parseMetrics((await get(`${url}/metrics`)).text).get('tablecache_reloads_total{table="items",reason="storage_lost"}') ?? 0;

const failureReloads = async (url: string) => parseMetrics((await get(`${url}/metrics`)).text).get('tablecache_reloads_total{table="items",reason="failure"}') ?? 0;

async function expectCacheEqual(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences?.slice(0, 3))).toMatchObject({ equal: true, redisRecords: ROWS });
}

describe('a Redis that evicts', () => {
  it('refuses to start under an allkeys-* maxmemory-policy, naming the policy and the fix (exit 2)', async () => {
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      // The CLI as an operator runs it, for its exit code.
      const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [path.resolve('bin/tablecache.js'), 'daemon', '--config', configFile], (error, _stdout, stderr) => {
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr });
        });
      });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('maxmemory-policy allkeys-lru');
      expect(run.stderr).toContain('noeviction');
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });

  it('reloads a table one of whose keys is gone while its metadata stays (as an eviction leaves it), and counts it', { timeout: 120_000 }, async () => {
    const { daemon, url } = await startReadyDaemon();
    expect(await storageLostReloads(url)).toBe(0);
    const keys = new TableKeys('items', KEY_PREFIX);
    const generation = Number(await admin.hget(keys.meta, 'gen'));
    expect(await admin.del(keys.index(generation, 'primary_key'))).toBe(1);
    await waitFor('a storage_lost reload', async () => (await storageLostReloads(url)) >= 1, { timeoutMs: 30_000 });
    await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 50 });
    const reader = await openReader({ url: server.url, table: 'items', keyPrefix: KEY_PREFIX });
    try {
      expect(await reader.range('primary_key', 1, 3)).toHaveLength(2);
    } finally {
      await reader.close();
    }
    await expectCacheEqual();
    await daemon.stop('SIGTERM');
  });

  it('notices records evicted under allkeys-lru after start, reloads (storage_lost), and is whole again once Redis stops evicting', async () => {
    const { daemon, url } = await startReadyDaemon();
    const before = await storageLostReloads(url);
    const failedBefore = await failureReloads(url);
    const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
    // The table no longer fits: the next writes evict some of its keys.
    await admin.config('SET', 'maxmemory', String(Math.floor(used * 0.6)));
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      // Noticed: the check's reload was requested (while Redis evicts, the reload itself may lose keys and must not be
      // published, so its completion, which the metric counts, waits until eviction stops), or it already completed.
      await waitFor('the daemon to notice the eviction', async () => {
        await admin.set('filler', 'x'.repeat(1_000));
        if (daemon.logged('Redis no longer holds the published data (flushed, restarted or taken over); reloading').length > 0) return true;
        return (await storageLostReloads(url)) > before || (await get(`${url}/readyz`)).status !== 200;
      }, { timeoutMs: 30_000, intervalMs: 100 });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
    }
    await waitFor('the cache to equal the query again', async () => {
      const [result] = await verifyCache(config);
      return result?.equal === true && (await get(`${url}/readyz`)).status === 200;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    // A reload that failed (a generation evicted in part is refused) is retried as `storage_lost` and `failure`; a refresh
    // that failed under eviction is retried as `failure` alone.
    expect((await storageLostReloads(url)) - before + (await failureReloads(url)) - failedBefore).toBeGreaterThan(0);
  }, 180_000);
});
