import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { TablecacheDaemon } from '../../../daemon/tablecacheDaemon.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { installConfigCapture, privateLogicalDatabase } from '../../support/logicalPostgres.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';

/**
 * Issue #16: Postgres does not publish a TRUNCATE of one partition alone
 * (publish_via_partition_root); the partition's truncate trigger that
 * `capture install` creates sends it on the daemon's channel instead.
 */

const CHANNEL = 'tc_partition_truncate';
let db: { readonly url: string; readonly pool: pg.Pool; drop(): Promise<void> };
let reader: TableReader<Record<string, unknown>>;
let config: TablecacheConfig;
let daemon: TablecacheDaemon | undefined;
const { redis, prefix: keyPrefix } = fileRedis('partition-truncate');

beforeAll(async () => {
  db = await privateLogicalDatabase();
  await db.pool.query(`
    CREATE TABLE events (id int, at date, name text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO events SELECT i, CASE WHEN i <= 10 THEN date '2025-06-01' ELSE date '2026-06-01' END, 'event ' || i FROM generate_series(1, 20) i;`);
  const raw = {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix },
    triggers: { schema: 'tablecache', channel: CHANNEL },
    capture: { method: 'logical' },
    daemon: { minReloadIntervalMs: 0, http: { port: 0 } },
    tables: { events: { query: 'SELECT id, at::text AS at, name FROM public.events', primaryKey: 'id', sources: { 'public.events': { key: 'id' } } } },
  };
  config = parseConfig(raw, { file: 'tablecache.json' });
  await installConfigCapture(db.pool, config);
  reader = await openReader({ redis, table: 'events', keyPrefix });
  daemon = new TablecacheDaemon(config, { leaseTtlMs: 2_000 });
  const loaded = new Promise((resolve) => daemon!.once('loaded', resolve));
  await daemon.start();
  await loaded;
}, 60_000);

afterAll(async () => {
  await daemon?.close();
  await reader?.close();
  await db?.drop();
});

describe('the daemon on the logical change source, with a partitioned source', () => {
  it('drops the cached records of a partition truncated alone', async () => {
    expect((await reader.info()).recordCount).toBe(20);
    await db.pool.query('TRUNCATE events_2025');
    const id = await sendBarrier(db.pool, { channel: CHANNEL, method: 'logical' });
    await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
    expect((await reader.info()).recordCount).toBe(10);
    expect(await reader.get(1)).toBeUndefined();
    const [result] = await verifyCache(config);
    expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true });
  });
});
