import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable, type RedisStorageTableOptions } from '../../../lib/redis/redisStorageTable.ts';
import { mergeHalfWayAndDie } from '../client/halfAppliedMerge.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';
import { idRange as range, idScoreRows as rows, idScoreScorer as scorer, type IdScoreRow as Row } from '../../support/idScoreRows.ts';

const { redis, prefix, opened } = fileRedis('intact');
let tableNumber = 0;

/** A writer whose table holds the records 1..`records`, published and noted as a daemon notes its loads. */
async function loaded(records: number, options: Partial<RedisStorageTableOptions<Row>> = {}): Promise<{ storage: RedisStorageTable<Row>; keys: TableKeys }> {
  const table = `t${++tableNumber}`;
  const storage = await RedisStorageTable.open<Row>({ redis, table, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  await storage.putRecords(rows(range(1, records)));
  await storage.markLoaded({ coverage: null });
  await storage.notePublished();
  return { storage, keys: new TableKeys(table, prefix) };
}

/** What an allkeys-* policy may do to the live generation: its records hash and every index gone, the metadata kept. */
async function evictLiveGeneration(keys: TableKeys): Promise<void> {
  const generation = Number(await redis.hget(keys.meta, 'gen'));
  expect(await redis.del(...keys.generationKeys(generation, scorer.indexNames))).toBe(1 + scorer.indexNames.length);
}

/** A daemon's refresh: the records of `ids` replaced or added, those of `deleted` discarded, in one merge. */
async function refresh(storage: RedisStorageTable<Row>, ids: readonly number[], deleted: readonly number[] = []): Promise<void> {
  for (const id of deleted) {
    for await (const row of storage.scratchDiscardRecords(new StorageRecordsSpec<Row>('primary_key', [new Interval(id, id + 1)]))) void row;
  }
  await storage.scratchPutRecords(rows(ids, 1_000));
  await storage.scratchMerge();
}

async function generationCounts(keys: TableKeys): Promise<number[]> {
  const generation = Number(await redis.hget(keys.meta, 'gen'));
  return [await redis.hlen(keys.records(generation)), ...(await Promise.all(scorer.indexNames.map((name) => redis.zcard(keys.index(generation, name)))))];
}

describe('RedisStorageTable.intact', () => {
  // The records hash and the indexes, evicted and recreated by later refreshes, agree with each other again: only the
  // count the load published, moved by every step since, tells that most records are gone.
  it.each([
    { merge: 'held in memory (one script call)', mergeBatchSize: undefined },
    { merge: 'staged and applied in bounded steps behind an overlay', mergeBatchSize: 2 },
  ])('is false once refreshes recreated a few records of an evicted live generation, merge $merge', async ({ mergeBatchSize }) => {
    const { storage, keys } = await loaded(50, mergeBatchSize === undefined ? {} : { mergeBatchSize });
    expect(await storage.intact()).toBe(true);
    await evictLiveGeneration(keys);
    await refresh(storage, [3, 4, 5, 60, 61]);
    expect(await generationCounts(keys)).toEqual([5, 5, 5]);
    expect(await storage.intact()).toBe(false);
  });

  it('is false once a direct write recreated records of an evicted live generation', async () => {
    const { storage, keys } = await loaded(50);
    await evictLiveGeneration(keys);
    await storage.putRecords(rows([7, 8]));
    expect(await generationCounts(keys)).toEqual([2, 2, 2]);
    expect(await storage.intact()).toBe(false);
  });

  it('stays true through refreshes and direct writes that add, replace and delete records, and for a table refreshed empty', async () => {
    const { storage } = await loaded(20, { mergeBatchSize: 3 });
    await refresh(storage, [1, 2, 21], [5]);
    await refresh(storage, range(15, 30), range(1, 10));
    await storage.putRecords(rows([40, 41, 1]));
    for await (const row of storage.deleteRecords(new StorageRecordsSpec<Row>('primary_key', [new Interval(40, 41)]))) void row;
    expect(await storage.intact()).toBe(true);
    expect((await all(storage)).map(({ id }) => id)).toEqual([1, ...range(11, 30), 41]);
    await refresh(storage, [], range(1, 100));
    expect(await all(storage)).toEqual([]);
    expect(await storage.intact()).toBe(true);
  });

  it('checks a table published before meta.count existed as before, and by the count from its next step on', async () => {
    const { storage, keys } = await loaded(10);
    await redis.hdel(keys.meta, 'count');
    expect(await storage.intact()).toBe(true);
    await refresh(storage, [11]);
    expect(await redis.hget(keys.meta, 'count')).toBe('11');
    await evictLiveGeneration(keys);
    await refresh(storage, [12]);
    expect(await storage.intact()).toBe(false);
  });

  it('is true while a large merge is half applied, and true again once the next writer step finished it', async () => {
    const table = `t${++tableNumber}`;
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const storage = await RedisStorageTable.open<Row>({ redis: connection, table, keyPrefix: prefix, scorer, mergeBatchSize: 2 });
    try {
      await storage.putRecords(rows(range(1, 10)));
      await storage.markLoaded({ coverage: null });
      await storage.notePublished();
      await storage.scratchPutRecords(rows(range(5, 14), 1_000));
      await mergeHalfWayAndDie(connection, storage as RedisStorageTable<unknown>);
      await connection.connect();
      expect(await redis.hget(new TableKeys(table, prefix).meta, 'overlay')).not.toBeNull();
      expect(await storage.intact()).toBe(true);
      await storage.scratchReset();
      expect(await storage.intact()).toBe(true);
      expect((await all(storage)).length).toBe(14);
    } finally {
      await storage.close();
      connection.disconnect();
    }
  });
});

async function all(storage: RedisStorageTable<Row>): Promise<Row[]> {
  const found: Row[] = [];
  for await (const row of storage.getRecords(new StorageRecordsSpec<Row>('primary_key', [Interval.everything()]))) found.push(row);
  return found;
}
