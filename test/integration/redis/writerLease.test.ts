import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { LeaseHeldError, type LeaseLostError } from '../../../lib/redis/redisErrors.ts';
import { RedisStorageTable, type RedisStorageTableOptions } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

interface Row {
  id: number;
}

const scorer: RecordScorer<Row, number> = { indexNames: ['primary_key'], score: (_, row) => row.id, primaryKey: (row) => row.id };
const prefix = uniqueRedisPrefix('lease');
let redis: Redis;
let tableNumber = 0;
const opened: RedisStorageTable<Row>[] = [];

beforeAll(async () => {
  redis = new Redis(testRedisUrl(), { lazyConnect: true });
  await redis.connect();
});

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

async function open(table: string, options: Partial<RedisStorageTableOptions<Row>> = {}): Promise<RedisStorageTable<Row>> {
  const storage = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  return storage;
}

const nextTable = () => `t${++tableNumber}`;

describe('the writer lease', () => {
  it('refuses a second writer of the same table with an error naming the holder and the time left', async () => {
    const table = nextTable();
    const first = await open(table, { leaseTtlMs: 5_000 });
    const error = await open(table).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseHeldError);
    expect(error).toMatchObject({ code: 'TC_LEASE_HELD', holder: first.writerId, table });
    expect((error as LeaseHeldError).expiresInMs).toBeGreaterThan(0);
    expect((error as Error).message).toContain(first.writerId);
    expect((error as Error).message).toContain('standby');
  });

  it('lets writers of different tables run side by side', async () => {
    await open(nextTable());
    await expect(open(nextTable())).resolves.toBeInstanceOf(RedisStorageTable);
  });

  it('hands the table to a standby when the writer closes', async () => {
    const table = nextTable();
    const first = await open(table);
    const standby = open(table, { standby: true });
    await first.close();
    const second = await standby;
    await second.putRecords([{ id: 1 }]);
    expect(await redis.get(new TableKeys(table, prefix).lease)).toBe(second.writerId);
  });

  it('stops a standby wait when its signal aborts', async () => {
    const table = nextTable();
    await open(table);
    const controller = new AbortController();
    const waiting = open(table, { standby: true, signal: controller.signal });
    controller.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
  });

  it('fences a writer whose lease another writer took: its writes fail and it is told once', async () => {
    const table = nextTable();
    const keys = new TableKeys(table, prefix);
    const lost: LeaseLostError[] = [];
    const first = await open(table, { leaseTtlMs: 60_000, onLeaseLost: (e) => lost.push(e) });
    await first.putRecords([{ id: 1 }]);
    await first.markLoaded({ coverage: null });
    await redis.del(keys.lease);
    const second = await open(table);
    for (const write of [
      () => first.putRecords([{ id: 2 }]),
      () => first.scratchPutRecords([{ id: 2 }]),
      () => first.markLoaded({ coverage: null }),
      () => first.clear(),
    ]) {
      await expect(write()).rejects.toMatchObject({ code: 'TC_LEASE_LOST' });
    }
    expect(lost).toHaveLength(1);
    const everything = new StorageRecordsSpec<Row>('primary_key', [Interval.everything()]);
    const rows: Row[] = [];
    for await (const row of second.getRecords(everything)) rows.push(row);
    expect(rows).toEqual([{ id: 1 }]);
  });

  it('takes back a lease that lapsed while nobody else took it', async () => {
    const table = nextTable();
    const keys = new TableKeys(table, prefix);
    const writer = await open(table, { leaseTtlMs: 300 });
    await redis.del(keys.lease);
    await waitFor('the lease to be renewed', async () => (await redis.get(keys.lease)) === writer.writerId);
    await expect(writer.putRecords([{ id: 1 }])).resolves.toBe(1);
  });

  it('gives the lease up on close', async () => {
    const table = nextTable();
    const writer = await open(table);
    await writer.close();
    expect(await redis.exists(new TableKeys(table, prefix).lease)).toBe(0);
    await expect(writer.putRecords([])).rejects.toMatchObject({ code: 'TC_CLOSED' });
  });
});
