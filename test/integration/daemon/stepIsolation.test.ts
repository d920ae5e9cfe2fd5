import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { DaemonProcess, installConfigTriggers, releaseDaemonTest } from './daemonHarness.ts';

/**
 * Every table of a daemon step reads the step's one snapshot, in one
 * transaction; a table whose query fails there must not take the other
 * tables of the step down with it.
 */

const CHANNEL = 'tc_step_isolation_test';

type Row = Record<string, unknown>;

let db: TestDatabase;
let redis: Redis;
let sturdy: TableReader<Row>;
let daemon: DaemonProcess;
let directory: string;
const keyPrefix = uniqueRedisPrefix('isolation');

beforeAll(async () => {
  db = await createTestDatabase('step_isolation');
  await db.pool.query(`
    CREATE SCHEMA shop;
    CREATE TABLE shop.fragile (id integer PRIMARY KEY, v integer NOT NULL);
    CREATE TABLE shop.sturdy (id integer PRIMARY KEY, v integer NOT NULL);
    INSERT INTO shop.fragile SELECT i, 1 FROM generate_series(1, 10) i;
    INSERT INTO shop.sturdy SELECT i, 1 FROM generate_series(1, 10) i;
  `);
  directory = mkdtempSync(path.join(tmpdir(), 'tc-isolation-'));
  const file = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    daemon: { batchWindowMs: 0, logLevel: 'info', http: { port: 0 } },
    tables: {
      // Its query fails (division by zero) for a row with v = 0.
      fragile: { query: 'SELECT id, 100 / v AS q FROM shop.fragile', primaryKey: 'id', sources: { 'shop.fragile': { key: 'id' } } },
      sturdy: { query: 'SELECT id, v FROM shop.sturdy', primaryKey: 'id', sources: { 'shop.sturdy': { key: 'id' } } },
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  await installConfigTriggers(db.pool, parseConfig(raw, { file }));
  redis = new Redis(testRedisUrl());
  sturdy = await openReader<Row>({ redis, table: 'sturdy', keyPrefix });
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 2);
});

afterAll(async () => {
  await releaseDaemonTest({
    daemons: [daemon],
    stopWith: 'SIGKILL',
    reader: sturdy,
    redis,
    keyPrefix,
    removeConfig: () => rmSync(directory, { recursive: true, force: true }),
  });
  await db?.drop();
});

describe('a daemon step over several tables', () => {
  it("applies a table's changes although another table's query fails in the same step", async () => {
    // One transaction: both tables change in one step, the failing one first.
    await db.pool.query('BEGIN; UPDATE shop.fragile SET v = 0 WHERE id = 1; UPDATE shop.sturdy SET v = 42 WHERE id = 1; COMMIT');
    await waitFor('the failing refresh to be logged', () => daemon.logs.some((line) => String(line['msg']).startsWith('failed refreshing table fragile')), {
      timeoutMs: 20_000,
    });
    await waitFor('sturdy row 1 to show 42', async () => (await sturdy.get(1))?.['v'] === 42, { timeoutMs: 20_000 });
    expect(await sturdy.get(2)).toMatchObject({ id: 2, v: 1 });
  });
});
