import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { DaemonProcess, installConfigTriggers, releaseDaemonTest } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

type Row = Record<string, unknown>;

const CHANNEL = 'tc_capture_test';

let db: TestDatabase;
let redis: Redis;
let keyPrefix: string;
let config: TablecacheConfig;
let configFile: string;
let directory: string;
let daemon: DaemonProcess;
let url: string;
const readers: Record<string, TableReader<Row>> = {};

/**
 * Three cached tables over the three kinds of source: `orders` partitioned
 * two levels deep, `events` with an inheritance child, `items` a plain table
 * read with `SELECT *`.
 */
async function createSchema(): Promise<void> {
  await db.pool.query(`
    CREATE SCHEMA app;
    CREATE TABLE app.orders (order_id integer NOT NULL, note text) PARTITION BY RANGE (order_id);
    CREATE TABLE app.orders_low PARTITION OF app.orders FOR VALUES FROM (0) TO (100);
    CREATE TABLE app.orders_high PARTITION OF app.orders FOR VALUES FROM (100) TO (1000) PARTITION BY RANGE (order_id);
    CREATE TABLE app.orders_high_a PARTITION OF app.orders_high FOR VALUES FROM (100) TO (500);
    INSERT INTO app.orders VALUES (1, 'low'), (2, 'low'), (101, 'high');
    CREATE TABLE app.events (event_id integer PRIMARY KEY, note text);
    CREATE TABLE app.audit_events (extra text) INHERITS (app.events);
    INSERT INTO app.events VALUES (1, 'parent');
    CREATE TABLE app.items (item_id integer PRIMARY KEY, name text NOT NULL);
    INSERT INTO app.items SELECT i, 'item ' || i FROM generate_series(1, 20) i;
  `);
}

function writeConfig(): void {
  directory = mkdtempSync(path.join(tmpdir(), 'tc-capture-'));
  configFile = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    daemon: { batchWindowMs: 1, logLevel: 'info', http: { port: 0 }, captureCheckIntervalMs: 200 },
    tables: {
      orders: { query: 'SELECT order_id, note FROM app.orders', primaryKey: 'order_id', sources: { 'app.orders': { key: 'order_id' } } },
      events: { query: 'SELECT event_id, note FROM app.events', primaryKey: 'event_id', sources: { 'app.events': { key: 'event_id' } } },
      items: { query: 'SELECT * FROM app.items', primaryKey: 'item_id', sources: { 'app.items': { key: 'item_id' } } },
    },
  };
  writeFileSync(configFile, JSON.stringify(raw, null, 2));
  config = parseConfig(raw, { file: configFile });
}

/** Waits until the daemon has applied everything committed before now. */
async function barrier(): Promise<void> {
  const id = await sendBarrier(db.pool, { channel: CHANNEL });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
}

async function metrics(): Promise<Map<string, number>> {
  return parseMetrics((await get(`${url}/metrics`)).text);
}

/** Waits until the series `name` counts at least one. */
async function waitForMetric(name: string): Promise<void> {
  await waitFor(`${name} >= 1`, async () => ((await metrics()).get(name) ?? 0) >= 1, { timeoutMs: 20_000, intervalMs: 50 });
}

async function readiness(): Promise<{ status: number; body: { ready: boolean; reasons: string[] } }> {
  const { status, body } = await get(`${url}/readyz`);
  return { status, body: { ready: body.ready === true, reasons: body.reasons ?? [] } };
}

const waitUntilReady = () => waitFor('/readyz to answer 200', async () => (await readiness()).status === 200, { timeoutMs: 30_000, intervalMs: 50 });

async function verifyAll(): Promise<void> {
  for (const result of await verifyCache(config)) expect(result, `${result.table}: ${JSON.stringify(result.differences)}`).toMatchObject({ equal: true });
}

beforeAll(async () => {
  db = await createTestDatabase('capture_health');
  keyPrefix = uniqueRedisPrefix('capture');
  await createSchema();
  writeConfig();
  await installConfigTriggers(db.pool, config);
  redis = new Redis(testRedisUrl());
  daemon = DaemonProcess.start(configFile);
  url = await healthUrl(daemon);
  await waitUntilReady();
  for (const table of ['orders', 'events', 'items']) readers[table] = await openReader<Row>({ redis, table, keyPrefix });
}, 60_000);

afterAll(async () => {
  for (const reader of Object.values(readers)) await reader.close();
  await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGKILL', reader: undefined, redis, keyPrefix, removeConfig: () => rmSync(directory, { recursive: true, force: true }) });
  await db?.drop();
});

describe('the daemon keeps capturing changes of partitions and inheritance children', () => {
  it('sees a write made directly to a partition, two levels down', async () => {
    await db.pool.query(`INSERT INTO app.orders_high_a VALUES (102, 'direct')`);
    await db.pool.query(`UPDATE app.orders_low SET note = 'direct' WHERE order_id = 1`);
    await barrier();
    expect(await readers.orders!.get(102)).toEqual({ order_id: 102, note: 'direct' });
    expect(await readers.orders!.get(1)).toEqual({ order_id: 1, note: 'direct' });
  });

  it('sees a write made directly to an inheritance child', async () => {
    await db.pool.query(`INSERT INTO app.audit_events VALUES (2, 'child', 'x')`);
    await barrier();
    expect(await readers.events!.get(2)).toEqual({ event_id: 2, note: 'child' });
  });

  it('gives a partition created after start its triggers (its role owns it) and reloads what was written before', async () => {
    await db.pool.query(`CREATE TABLE app.orders_mid PARTITION OF app.orders_high FOR VALUES FROM (500) TO (1000)`);
    // Written before the daemon can have noticed the partition: only a reload brings it.
    await db.pool.query(`INSERT INTO app.orders_mid VALUES (600, 'before triggers')`);
    await waitFor('order 600 through the reader', async () => (await readers.orders!.get(600)) !== undefined, { timeoutMs: 20_000 });
    await daemon.waitForLog('created the change triggers of new partitions or child tables');
    await db.pool.query(`INSERT INTO app.orders_mid VALUES (601, 'after triggers')`);
    await barrier();
    expect(await readers.orders!.get(601)).toEqual({ order_id: 601, note: 'after triggers' });
  });

  it('reloads a table whose partition was detached: its rows leave the query', async () => {
    await db.pool.query(`ALTER TABLE app.orders DETACH PARTITION app.orders_low`);
    await waitFor('orders 1 and 2 gone', async () => (await readers.orders!.getMany([1, 2])).every((row) => row === undefined), { timeoutMs: 20_000 });
    expect((await metrics()).get('tablecache_schema_changes_total{table="orders"}')).toBeGreaterThanOrEqual(1);
    await waitUntilReady();
    await verifyAll();
  });
});

describe('the daemon follows schema changes of source tables', () => {
  it('reloads after ADD COLUMN … DEFAULT under SELECT *, so every record has the new column', async () => {
    await db.pool.query(`ALTER TABLE app.items ADD COLUMN w text DEFAULT 'x'`);
    await waitFor('every item with w = x', async () => {
      const rows = await readers.items!.getMany(Array.from({ length: 20 }, (_, index) => index + 1));
      return rows.every((row) => row?.['w'] === 'x');
    }, { timeoutMs: 20_000 });
    // Readers see a reload when it is published, a moment before the daemon counts it.
    await waitForMetric('tablecache_reloads_total{table="items",reason="schema_change"}');
    expect((await metrics()).get('tablecache_schema_changes_total{table="items"}')).toBeGreaterThanOrEqual(1);
    // Refreshes after the change carry the new column too.
    await db.pool.query(`UPDATE app.items SET w = 'y' WHERE item_id = 3`);
    await barrier();
    expect(await readers.items!.get(3)).toEqual({ item_id: 3, name: 'item 3', w: 'y' });
    await waitUntilReady();
    await verifyAll();
  });

  it('reloads after ALTER … TYPE … USING on the key column: the old keys are gone, the new ones there', async () => {
    await db.pool.query(`ALTER TABLE app.items ALTER COLUMN item_id TYPE text USING 'k' || item_id`);
    await waitFor('item k1 present and item 1 gone', async () => (await readers.items!.get('k1')) !== undefined && (await readers.items!.get(1)) === undefined, {
      timeoutMs: 20_000,
    });
    await waitUntilReady();
    await verifyAll();
  });

  it('is not ready after DROP TABLE + CREATE TABLE of a source, names the fix, and reloads once the triggers are back', async () => {
    await db.pool.query(`DROP TABLE app.items; CREATE TABLE app.items (item_id integer PRIMARY KEY, name text NOT NULL)`);
    await db.pool.query(`INSERT INTO app.items VALUES (1, 'recreated')`);
    // A check may read the triggers before the DROP and the shape after it: the reload it requests is named first, the
    // missing triggers by the next check.
    const notReady = await waitFor('/readyz naming the missing triggers of app.items', async () => {
      const answer = await readiness();
      return answer.status === 503 && answer.body.reasons.some((reason) => reason.includes('source table app.items are not captured')) ? answer.body : undefined;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    expect(notReady.reasons.find((reason) => reason.includes('source table app.items are not captured'))).toContain(`tablecache triggers install --config ${configFile}`);
    expect((await metrics()).get('tablecache_capture_problems')).toBe(1);
    // Written while no trigger reports it.
    await db.pool.query(`INSERT INTO app.items VALUES (2, 'unseen')`);

    await installConfigTriggers(db.pool, config);
    await waitUntilReady();
    await waitFor('item 2 through the reader', async () => (await readers.items!.get(2)) !== undefined, { timeoutMs: 20_000 });
    expect((await metrics()).get('tablecache_capture_problems')).toBe(0);
    await waitForMetric('tablecache_reloads_total{table="items",reason="capture_restored"}');
    await db.pool.query(`UPDATE app.items SET name = 'captured again' WHERE item_id = 1`);
    await barrier();
    expect(await readers.items!.get(1)).toEqual({ item_id: 1, name: 'captured again' });
    await verifyAll();
  });
});
