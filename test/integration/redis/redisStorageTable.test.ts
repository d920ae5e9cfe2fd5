import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable, type RedisStorageTableOptions } from '../../../lib/redis/redisStorageTable.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';
import { idScoreScorer as scorer, type IdScoreRow as Row } from '../../support/idScoreRows.ts';
import { mergeHalfWayAndDie } from '../client/halfAppliedMerge.ts';
import { stampedScorer, type StampedRecord } from './processes/stampedRecords.ts';

const { redis, prefix, opened } = fileRedis('writer');
let tableNumber = 0;

async function open<R = Row>(table: string, options: Partial<RedisStorageTableOptions<R>> = {}): Promise<RedisStorageTable<R>> {
  const storage = await RedisStorageTable.open<R>({ redis, table, keyPrefix: prefix, scorer: scorer as unknown as RecordScorer<R>, ...options });
  opened.push(storage);
  return storage;
}

async function keysOf(table: string): Promise<string[]> {
  const base = new TableKeys(table, prefix).base;
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch.map((key) => key.slice(base.length)));
  } while (cursor !== '0');
  return keys.sort();
}

async function all<R>(storage: RedisStorageTable<R>): Promise<R[]> {
  const rows: R[] = [];
  for await (const row of storage.getRecords(new StorageRecordsSpec<R>('primary_key', [Interval.everything()]))) rows.push(row);
  return rows;
}

const nextTable = () => `t${++tableNumber}`;

describe('RedisStorageTable', () => {
  it('rejects a NaN score, naming the record and the index, and stores nothing of that batch', async () => {
    const storage = await open(nextTable());
    const error = await storage.putRecords([{ id: 1, score: 1 }, { id: 7, score: Number.NaN }]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
    expect(String(error)).toMatch(/Record "7" of table "t\d+" in index "score" has the score NaN; scores are float64 numbers \(±Infinity allowed, NaN not\)/);
    expect(await all(storage)).toEqual([]);
    await expect(storage.scratchPutRecords([{ id: 2, score: 'high' as unknown as number }])).rejects.toThrow(/score high \(a string\)/);
  });

  it('rejects a record whose primary key is not a string, a bigint or a finite number', async () => {
    const storage = await open(nextTable());
    await expect(storage.putRecords([{ id: Number.POSITIVE_INFINITY, score: 1 }])).rejects.toThrow(/no usable primary key.*got Infinity/);
    await expect(storage.putRecords([{ id: undefined as unknown as number, score: 1 }])).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
  });

  it('refuses direct writes while scratch changes are staged', async () => {
    const storage = await open(nextTable());
    await storage.scratchPutRecords([{ id: 1, score: 1 }]);
    await expect(storage.putRecords([{ id: 2, score: 2 }])).rejects.toThrow(/scratch changes are staged; call scratchMerge\(\)/);
    const deleting = storage.deleteRecords(new StorageRecordsSpec<Row>('primary_key', [Interval.everything()]));
    await expect(deleting.next()).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
  });

  it('names the indexes when a spec names one the table does not have', async () => {
    const storage = await open(nextTable());
    const spec = new StorageRecordsSpec<Row>('area', [Interval.everything()]);
    await expect(storage.getRecords(spec).next()).rejects.toThrow(/no index "area"; its indexes are primary_key, score/);
  });

  it('continues on the live data when reopened with the same indexes and codec', async () => {
    const table = nextTable();
    const first = await open(table);
    await first.putRecords([{ id: 1, score: 1 }, { id: 2, score: 2 }]);
    await first.markLoaded({ coverage: null });
    await first.close();
    const second = await open(table);
    expect(await all(second)).toEqual([{ id: 1, score: 1 }, { id: 2, score: 2 }]);
    await second.scratchPutRecords([{ id: 3, score: 3 }]);
    await second.scratchMerge();
    await using reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
    expect(await reader.range('score', 0, 10)).toEqual([{ id: 1, score: 1 }, { id: 2, score: 2 }, { id: 3, score: 3 }]);
  });

  it('starts empty when reopened with other indexes, while readers keep the old data until markLoaded', async () => {
    const table = nextTable();
    const first = await open(table);
    await first.putRecords([{ id: 1, score: 1 }]);
    await first.markLoaded({ coverage: null });
    await first.close();
    const byIdOnly: RecordScorer<Row, number> = { indexNames: ['primary_key'], score: (_, row) => row.id, primaryKey: (row) => row.id };
    const second = await open(table, { scorer: byIdOnly });
    expect(await all(second)).toEqual([]);
    await using reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
    await second.putRecords([{ id: 5, score: 5 }]);
    expect((await reader.info()).indexNames).toEqual(['primary_key', 'score']);
    expect(await reader.get(1)).toEqual({ id: 1, score: 1 });
    await second.markLoaded({ coverage: null });
    expect(await reader.getMany([1, 5])).toEqual([undefined, { id: 5, score: 5 }]);
    expect((await reader.info()).indexNames).toEqual(['primary_key']);
  });

  it('leaves only the published data behind when closed, deleting an unpublished generation and staged changes', async () => {
    const table = nextTable();
    const storage = await open(table);
    await storage.putRecords([{ id: 1, score: 1 }]);
    await storage.markLoaded({ coverage: null });
    const published = await keysOf(table);
    await storage.scratchPutRecords([{ id: 2, score: 2 }]);
    await storage.clear();
    await storage.putRecords([{ id: 3, score: 3 }]);
    await storage.scratchPutRecords([{ id: 4, score: 4 }]);
    expect((await keysOf(table)).length).toBeGreaterThan(published.length);
    await storage.close();
    expect(await keysOf(table)).toEqual(published.filter((key) => key !== 'lease'));
    expect(published).toEqual(['g1:i:primary_key', 'g1:i:score', 'g1:r', 'lease', 'meta', 'owned']);
  });

  it('deletes and discards across many pages and thousands of intervals, keeping what the recheck rejects', async () => {
    const storage = await open(nextTable());
    const rows = (ids: Iterable<number>) => [...ids].map((id) => ({ id, score: id % 7 }));
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
    const model = new Map(rows(range(0, 3_000)).map((row) => [row.id, row]));
    await storage.putRecords(model.values());

    const deleted = [];
    for await (const row of storage.deleteRecords(new StorageRecordsSpec<Row>('primary_key', [new Interval(0, 3_000)], (row) => row.id % 3 === 0))) deleted.push(row);
    expect(deleted.map((row) => row.id).sort((a, b) => a - b)).toEqual(range(0, 3_000).filter((id) => id % 3 === 0));
    for (const row of deleted) model.delete(row.id);

    const points = range(0, 3_000).filter((id) => id % 2 === 0).map((id) => Interval.onlyContaining(id));
    for await (const row of storage.deleteRecords(new StorageRecordsSpec<Row>('primary_key', points, (row) => row.id % 4 === 0))) model.delete(row.id);
    expect((await all(storage)).map((row) => row.id)).toEqual([...model.keys()].sort((a, b) => a - b));

    await storage.scratchPutRecords(rows(range(5_000, 7_500)));
    for (const row of rows(range(5_000, 7_500))) model.set(row.id, row);
    const discarded = [];
    for await (const row of storage.scratchDiscardRecords(new StorageRecordsSpec<Row>('score', [Interval.everything()], (row) => row.id % 5 === 0))) discarded.push(row);
    expect(discarded.every((row) => row.id < 3_000 && row.id % 5 === 0)).toBe(true);
    for (const id of [...model.keys()]) if (id % 5 === 0) model.delete(id);
    await storage.scratchMerge();
    const expected = [...model.values()].sort((a, b) => a.id - b.id);
    expect(await all(storage)).toEqual(expected);
    const byScore: Row[] = [];
    for await (const row of storage.getRecords(new StorageRecordsSpec<Row>('score', [new Interval(0, 3), new Interval(3, 7)]))) byScore.push(row);
    expect(byScore.sort((a, b) => a.id - b.id)).toEqual(expected);
  });

  it('counts every record of a large staged merge written in concurrent batches while the merge is under way', async () => {
    const table = nextTable();
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const storage = await RedisStorageTable.open<Row>({ redis: connection, table, keyPrefix: prefix, scorer, mergeBatchSize: 1_000 });
    try {
      await storage.putRecords([{ id: 0, score: 0 }]);
      await storage.markLoaded({ coverage: null });
      // Nine write batches of 1,000, four in flight at once, each adding its share to the count the merge publishes.
      await storage.scratchPutRecords(Array.from({ length: 9_000 }, (_, i) => ({ id: i + 1, score: i + 1 })));
      // While the overlay is up, readers' recordCount is the count the merge published, not HLEN.
      await mergeHalfWayAndDie(connection, storage as RedisStorageTable<unknown>);
      await using reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
      expect((await reader.info()).recordCount).toBe(9_001);
    } finally {
      await storage.close().catch(() => undefined);
      connection.disconnect();
    }
  });

  it('finishes a merge that was cut off after readers saw it, before the session is touched again', async () => {
    const table = nextTable();
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const storage = await RedisStorageTable.open<Row>({ redis: connection, table, keyPrefix: prefix, scorer, mergeBatchSize: 2 });
    try {
      await storage.putRecords([1, 2, 3, 4].map((id) => ({ id, score: id })));
      await storage.markLoaded({ coverage: null });
      for await (const row of storage.scratchDiscardRecords(new StorageRecordsSpec<Row>('primary_key', [new Interval(1, 3)]))) void row;
      await storage.scratchPutRecords([{ id: 5, score: 5 }, { id: 6, score: 6 }]);
      await mergeHalfWayAndDie(connection, storage as RedisStorageTable<unknown>);
      await using reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
      const merged = [3, 4, 5, 6].map((id) => ({ id, score: id }));
      expect(await reader.range('primary_key', 0, 10)).toEqual(merged);

      await connection.connect();
      await storage.scratchReset();
      expect(await redis.hget(new TableKeys(table, prefix).meta, 'overlay')).toBeNull();
      expect(await reader.range('primary_key', 0, 10)).toEqual(merged);
      expect(await all(storage)).toEqual(merged);
    } finally {
      await storage.close();
      connection.disconnect();
    }
  });

  // A session within one merge step stays in the writer's memory until the merge; a larger one is staged in Redis.
  it.each([
    { session: 'held in memory', mergeBatchSize: undefined },
    { session: 'staged in Redis', mergeBatchSize: 1 },
  ])('keeps a session $session when its merge was cut off before it started', async ({ mergeBatchSize }) => {
    const table = nextTable();
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const storage = await RedisStorageTable.open<Row>({ redis: connection, table, keyPrefix: prefix, scorer, ...(mergeBatchSize ? { mergeBatchSize } : {}) });
    try {
      await storage.putRecords([{ id: 1, score: 1 }]);
      await storage.markLoaded({ coverage: null });
      await storage.scratchPutRecords([{ id: 2, score: 2 }, { id: 3, score: 3 }]);
      connection.disconnect();
      await expect(storage.scratchMerge()).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
      await connection.connect();
      await storage.scratchMerge();
      expect(await all(storage)).toEqual([{ id: 1, score: 1 }, { id: 2, score: 2 }, { id: 3, score: 3 }]);
    } finally {
      await storage.close();
      connection.disconnect();
    }
  });

  it('refuses to open a table stored in a key layout format it does not know', async () => {
    const table = nextTable();
    await redis.hset(new TableKeys(table, prefix).meta, 'format', '99', 'gen', '1');
    await expect(open(table)).rejects.toThrow(/key layout format 99; this writer writes format 1\. Delete the keys/);
    expect(await redis.exists(new TableKeys(table, prefix).lease)).toBe(0);
  });

  it('after a writer is killed mid-reload, keeps readers on the last complete generation; the next writer deletes the orphan', async () => {
    const table = nextTable();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./processes/crashingWriter.ts', import.meta.url)), testRedisUrl(), prefix, table, '200'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    for await (const line of createInterface({ input: child.stdout! })) if (line === 'mid-load') break;
    child.kill('SIGKILL');
    await exited;

    await using reader = await openReader<StampedRecord>({ redis, table, keyPrefix: prefix });
    const stamps = async () => new Set((await reader.range('primary_key', -Infinity, Infinity)).map((record) => record.stamp));
    expect(await stamps()).toEqual(new Set(['complete']));
    expect((await reader.info()).recordCount).toBe(200);
    const generationsBefore = (await keysOf(table)).filter((key) => key.endsWith(':r'));
    expect(generationsBefore).toHaveLength(2);

    const successor = await open<StampedRecord>(table, { scorer: stampedScorer, standby: true, leaseTtlMs: 500 });
    expect(await keysOf(table)).toEqual([`g${(await reader.info()).generation}:i:primary_key`, `g${(await reader.info()).generation}:r`, 'lease', 'meta', 'owned']);
    expect(await stamps()).toEqual(new Set(['complete']));
    expect(await redis.hkeys(new TableKeys(table, prefix).owned)).toEqual([`g${(await reader.info()).generation}`]);
    expect((await all(successor)).length).toBe(200);
  });
});
