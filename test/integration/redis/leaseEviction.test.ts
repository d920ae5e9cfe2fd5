import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
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
