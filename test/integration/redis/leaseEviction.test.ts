import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import type { LeaseLostError } from '../../../lib/redis/redisErrors.ts';
import { RedisStorageTable, type RedisStorageTableOptions } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

interface Row {
  id: number;
}

const scorer: RecordScorer<Row, number> = { indexNames: ['primary_key'], score: (_, row) => row.id, primaryKey: (row) => row.id };
const prefix = uniqueRedisPrefix('lease_evicted');
let redis: Redis;
let tableNumber = 0;
const opened: RedisStorageTable<Row>[] = [];

beforeAll(async () => {
  redis = new Redis(testRedisUrl());
});

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

async function loadedWriter(options: Partial<RedisStorageTableOptions<Row>>): Promise<{ storage: RedisStorageTable<Row>; keys: TableKeys }> {
  const table = `t${++tableNumber}`;
  const storage = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  await storage.putRecords([{ id: 1 }, { id: 2 }]);
  await storage.markLoaded({ coverage: null });
  return { storage, keys: new TableKeys(table, prefix) };
}

/** What an allkeys-* eviction policy may do: remove the lease and the table's metadata, while nobody else writes. */
async function evict(keys: TableKeys): Promise<void> {
  await redis.del(keys.lease, keys.meta);
}

describe('a lease that Redis lost', () => {
  it('is reported by the renewal as lost data (with the table keys), not as another writer', async () => {
    const lost: LeaseLostError[] = [];
    const { keys } = await loadedWriter({ leaseTtlMs: 300, onLeaseLost: (error) => lost.push(error) });
    await evict(keys);
    await waitFor('the lease loss to be reported', () => lost.length === 1);
    expect(lost[0]).toMatchObject({ code: 'TC_LEASE_LOST', dataLost: true });
    expect(lost[0]!.message).toContain("Redis lost the table's keys");
    expect(lost[0]!.message).toContain('maxmemory-policy');
    expect(lost[0]!.message).not.toContain('two writers');
  });

  it('is reported by a refused write as lost data when the fence token is gone', async () => {
    const lost: LeaseLostError[] = [];
    const { storage, keys } = await loadedWriter({ leaseTtlMs: 60_000, onLeaseLost: (error) => lost.push(error) });
    await evict(keys);
    await expect(storage.putRecords([{ id: 3 }])).rejects.toMatchObject({ code: 'TC_LEASE_LOST', dataLost: true });
    expect(lost.map((error) => error.dataLost)).toEqual([true]);
  });

  it('is still reported as taken when another writer holds it', async () => {
    const lost: LeaseLostError[] = [];
    const { keys } = await loadedWriter({ leaseTtlMs: 300, onLeaseLost: (error) => lost.push(error) });
    await redis.set(keys.lease, 'another-writer', 'PX', 60_000);
    await waitFor('the lease loss to be reported', () => lost.length === 1);
    expect(lost[0]).toMatchObject({ code: 'TC_LEASE_LOST', dataLost: false });
    expect(lost[0]!.message).toContain('another writer took it');
  });
});

/** What a Redis restart without persistence does to one table: every key of it is gone. */
async function loseEverything(table: string): Promise<void> {
  await deleteKeysWithPrefix(redis, `${prefix}${table}}`);
}

async function records(storage: RedisStorageTable<Row>): Promise<number[]> {
  const rows: number[] = [];
  for await (const row of storage.getRecords(new StorageRecordsSpec('primary_key', [Interval.everything()]))) rows.push(row.id);
  return rows.sort((a, b) => a - b);
}

describe('a writer from before Redis lost or rolled back the table', () => {
  // Its fence token must never be handed out again: a counter that starts anew in an empty Redis (or goes back with an
  // older snapshot) gave the next writer the stale writer's token, and the stale writer's held-back refresh, read in an
  // older snapshot, was merged into the new writer's published load (the chaos run's torn transfer reads).
  it('cannot write after the keys were lost and another writer loaded the table', async () => {
    const { storage: stale, keys } = await loadedWriter({ leaseTtlMs: 60_000 });
    await loseEverything(keys.table);
    const fresh = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table: keys.table, keyPrefix: prefix, scorer, leaseTtlMs: 60_000 });
    opened.push(fresh);
    await fresh.clear();
    await fresh.putRecords([{ id: 10 }, { id: 11 }]);
    await fresh.markLoaded({ coverage: null });

    await stale.scratchPutRecords([{ id: 3 }]);
    await expect(stale.scratchMerge()).rejects.toMatchObject({ code: 'TC_LEASE_LOST' });
    expect(await records(fresh)).toEqual([10, 11]);
  });

  it('cannot write after Redis went back to a snapshot from before it took the lease', async () => {
    const { storage: first, keys } = await loadedWriter({ leaseTtlMs: 60_000 });
    const snapshot = await redis.hgetall(keys.meta);
    await first.close();
    const stale = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table: keys.table, keyPrefix: prefix, scorer, leaseTtlMs: 60_000 });
    opened.push(stale);
    // Restored from the snapshot: the lease key expired meanwhile, the metadata is the first writer's.
    await redis.del(keys.lease);
    await redis.hset(keys.meta, snapshot);
    const fresh = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table: keys.table, keyPrefix: prefix, scorer, leaseTtlMs: 60_000 });
    opened.push(fresh);

    await expect(stale.putRecords([{ id: 3 }])).rejects.toMatchObject({ code: 'TC_LEASE_LOST' });
    expect(await records(fresh)).toEqual([1, 2]);
  });
});

describe('a load whose new generation Redis evicted while it was written', () => {
  // An allkeys-* policy can drop the records hash and the indexes between two batches; the later batches recreate
  // them, with counts that agree with each other, so nothing but the count the load wrote tells the loss.
  it('is not published: readers keep the previous load, and loading again publishes it whole', async () => {
    const { storage, keys } = await loadedWriter({ leaseTtlMs: 60_000, writeBatchSize: 10 });
    const live = Number(await redis.hget(keys.meta, 'gen'));
    async function* rowsEvictedAfter30(): AsyncGenerator<Row> {
      for (let id = 1; id <= 50; id++) {
        if (id === 31) {
          const [recordsKey] = (await redis.keys(keys.records(live).replace(`:g${live}:r`, ':g*:r'))).filter((key) => key !== keys.records(live));
          const generation = Number(/:g(\d+):r$/.exec(recordsKey!)![1]);
          await waitFor('the first 30 records to be written', async () => (await redis.hlen(keys.records(generation))) === 30);
          expect(await redis.del(...keys.generationKeys(generation, scorer.indexNames))).toBe(2);
        }
        yield { id };
      }
    }
    await storage.clear();
    expect(await storage.putRecords(rowsEvictedAfter30())).toBe(50);
    await expect(storage.markLoaded({ coverage: null })).rejects.toMatchObject({ code: 'TC_STORAGE_FAILED', expected: 50, stored: [20, 20] });
    expect(Number(await redis.hget(keys.meta, 'gen'))).toBe(live);

    await storage.clear();
    await storage.putRecords(Array.from({ length: 50 }, (_, i) => ({ id: i + 1 })));
    await storage.markLoaded({ coverage: null });
    expect(await records(storage)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });
});
