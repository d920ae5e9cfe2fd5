import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { barrierMarkKey, openReader, waitForBarrier, type TableReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

interface Row {
  id: number;
  stamp: number;
}

const scorer: RecordScorer<Row, number> = {
  indexNames: ['primary_key'],
  score: (_indexName, row) => row.id,
  primaryKey: (row) => row.id,
};
const row = (id: number, stamp: number): Row => ({ id, stamp });
const rows = (ids: number[], stamp: number) => ids.map((id) => row(id, stamp));

const { redis, prefix, opened } = fileRedis('near');
let tableNumber = 0;

async function loaded(records: Row[], options: Partial<Parameters<typeof RedisStorageTable.open<Row>>[0]> = {}) {
  const storage = await RedisStorageTable.open<Row>({ redis, table: `rows${++tableNumber}`, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  await storage.clear();
  await storage.putRecords(records);
  await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
  return storage;
}

async function nearReader(table: string, maxRecords = 1_000): Promise<TableReader<Row>> {
  const reader = await openReader<Row>({ url: testRedisUrl(), table, keyPrefix: prefix, nearCache: { maxRecords } });
  opened.push(reader);
  await waitFor('the near-cache to subscribe', () => reader.nearCacheStats()!.active);
  return reader;
}

/** One writer step that gives `records` new values. */
async function step(storage: RedisStorageTable<Row>, records: Row[]): Promise<number> {
  await storage.scratchPutRecords(records);
  await storage.scratchMerge();
  return Number(await redis.hget(`{${prefix}${storage.name}}:meta`, 'step'));
}

/** The reader's subscriber connection: tests pause its socket to hold announcements back, or destroy it to lose them. */
function subscriberSocket(reader: TableReader<Row>): { pause(): void; resume(): void; destroy(): void } {
  return (reader as unknown as { subscription: { subscriber: Redis } }).subscription.subscriber.stream as never;
}

const streamReached = (reader: TableReader<Row>, wanted: number) => () => (reader.nearCacheStats()!.streamStep ?? -1) >= wanted;

describe('the near-cache of the reader client', () => {
  it('answers repeated gets and getManys from process memory, present and absent keys alike', async () => {
    const storage = await loaded(rows([1, 2, 3], 0));
    const reader = await nearReader(storage.name);
    expect(await reader.get(1)).toEqual(row(1, 0));
    expect(await reader.getMany([1, 2, 9])).toEqual([row(1, 0), row(2, 0), undefined]);
    const before = reader.nearCacheStats()!;
    expect(await reader.get(1)).toEqual(row(1, 0));
    expect(await reader.get(9)).toBeUndefined();
    expect(await reader.getMany([2, 1, 9])).toEqual([row(2, 0), row(1, 0), undefined]);
    const after = reader.nearCacheStats()!;
    expect(after.hits - before.hits).toBe(3);
    expect(after.misses).toBe(before.misses);
    expect((await reader.info()).nearCache).toMatchObject({ hits: after.hits, active: true });
  });

  it('returns frozen records, so a caller cannot change what other callers read', async () => {
    const storage = await loaded(rows([1], 0));
    const reader = await nearReader(storage.name);
    const first = (await reader.get(1))!;
    expect(Object.isFrozen(first)).toBe(true);
    expect(() => {
      (first as { stamp: number }).stamp = 99;
    }).toThrow(TypeError);
    expect(await reader.get(1)).toEqual(row(1, 0));
  });

  it('rule 1: never serves a key changed by step s once the stream has delivered step s (refresh, large merge, reload)', async () => {
    const storage = await loaded(rows([1, 2, 3, 4], 0), { mergeBatchSize: 2 });
    const reader = await nearReader(storage.name);
    await reader.getMany([1, 2, 3, 4]);
    // A held-back refresh (applyChanges.lua).
    let s = await step(storage, [row(1, 1)]);
    await waitFor('step of the refresh on the stream', streamReached(reader, s));
    expect(await reader.getMany([1, 2])).toEqual([row(1, 1), row(2, 0)]);
    // A merge staged in Redis and applied through the overlay in several calls (mergeStep.lua).
    await reader.getMany([1, 2, 3, 4]);
    await storage.scratchPutRecords(rows(Array.from({ length: 300 }, (_, i) => i + 1), 2));
    await storage.scratchMerge();
    s = Number(await redis.hget(`{${prefix}${storage.name}}:meta`, 'step'));
    await waitFor('step of the merge on the stream', streamReached(reader, s));
    expect(await reader.getMany([1, 2, 3, 4])).toEqual(rows([1, 2, 3, 4], 2));
    // A reload switches the generation (publishGeneration.lua): everything.
    await reader.getMany([1, 2, 3, 4]);
    await storage.clear();
    await storage.putRecords(rows([1, 2], 3));
    await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
    s = Number(await redis.hget(`{${prefix}${storage.name}}:meta`, 'step'));
    await waitFor('step of the reload on the stream', streamReached(reader, s));
    expect(await reader.getMany([1, 2, 3, 4])).toEqual([row(1, 3), row(2, 3), undefined, undefined]);
  });

  it('rule 2: a value read ahead of the stream is returned but cached only once the stream reaches its step; a getMany from the cache is one snapshot', async () => {
    const storage = await loaded(rows([1, 2, 3], 0));
    const reader = await nearReader(storage.name);
    await reader.getMany([1, 2]);
    const socket = subscriberSocket(reader);
    socket.pause();
    const s = await step(storage, rows([1, 2], 1));
    // The stream has not delivered step s: the cached entries are all of the step before, one snapshot.
    expect(await reader.getMany([1, 2])).toEqual(rows([1, 2], 0));
    // A read that misses goes to Redis and sees step s, whole.
    expect(await reader.getMany([1, 2, 3])).toEqual(rows([1, 2, 3], 1).map((r) => (r.id === 3 ? row(3, 0) : r)));
    const missesBefore = reader.nearCacheStats()!.misses;
    expect(await reader.get(3)).toEqual(row(3, 0));
    expect(reader.nearCacheStats()!.misses).toBe(missesBefore + 1);
    socket.resume();
    await waitFor('step s on the stream', streamReached(reader, s));
    const hitsBefore = reader.nearCacheStats()!.hits;
    expect(await reader.getMany([1, 2, 3])).toEqual([row(1, 1), row(2, 1), row(3, 0)]);
    expect(reader.nearCacheStats()!.hits).toBe(hitsBefore + 1);
  });

  it('rule 3: losing the subscription empties the cache and bypasses it until resubscribed, so an announcement lost with it does no harm', async () => {
    const storage = await loaded(rows([1, 2], 0));
    const reader = await nearReader(storage.name);
    await reader.getMany([1, 2]);
    const socket = subscriberSocket(reader);
    socket.pause();
    const s = await step(storage, [row(1, 1)]);
    // The announcement of step s sits unread in the socket, and dies with it.
    socket.destroy();
    await waitFor('the near-cache to resubscribe', streamReached(reader, s));
    expect(reader.nearCacheStats()).toMatchObject({ active: true, records: 0 });
    expect(await reader.getMany([1, 2])).toEqual([row(1, 1), row(2, 0)]);
  });

  it('rule 4: waitForBarrier returns only when the near-cache can no longer answer from before the barrier', async () => {
    const storage = await loaded(rows([1], 0));
    const reader = await nearReader(storage.name);
    await reader.get(1);
    subscriberSocket(reader).pause();
    await step(storage, [row(1, 1)]);
    // What the daemon does once it has applied everything before the barrier.
    await redis.set(barrierMarkKey(prefix, 'b1'), '1', 'PX', 60_000);
    await waitForBarrier(redis, 'b1', { keyPrefix: prefix, timeoutMs: 5_000 });
    expect(await reader.get(1)).toEqual(row(1, 1));
    subscriberSocket(reader).resume();
  });

  it('holds at most maxRecords records', async () => {
    const storage = await loaded(rows(Array.from({ length: 100 }, (_, i) => i), 0));
    const reader = await nearReader(storage.name, 10);
    for (let id = 0; id < 100; id++) await reader.get(id);
    expect(reader.nearCacheStats()!.records).toBe(10);
    expect(await reader.getMany([97, 98, 99])).toEqual(rows([97, 98, 99], 0));
  });

  it('refuses a bad size with a clear error', async () => {
    const storage = await loaded(rows([1], 0));
    await expect(openReader({ url: testRedisUrl(), table: storage.name, keyPrefix: prefix, nearCache: { maxRecords: 0 } })).rejects.toMatchObject({
      code: 'TC_INVALID_ARGUMENT',
      message: expect.stringContaining('nearCache.maxRecords'),
    });
  });

  it('a writer loop against near-cached readers: no read after a reached barrier returns a value older than the barrier', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => i);
    const storage = await loaded(rows(keys, 0));
    const readers = await Promise.all([nearReader(storage.name), nearReader(storage.name)]);
    let running = true;
    let stale = 0;
    let checked = 0;
    // Readers hammer the hot keys, so the caches are full when each barrier is checked.
    const hammering = readers.map(async (reader, n) => {
      for (let i = 0; running; i++) {
        if (i % 2 === 0) await reader.get(keys[(i + n) % keys.length]!);
        else await reader.getMany(keys.slice(0, 5));
        // A hit resolves in a microtask: without this the loop would starve the writer's I/O.
        if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    });
    for (let stamp = 1; stamp <= 150; stamp++) {
      await step(storage, stamp % 10 === 0 ? rows(keys, stamp) : [row(stamp % keys.length, stamp), row(0, stamp)]);
      await redis.set(barrierMarkKey(prefix, `loop${stamp}`), '1', 'PX', 60_000);
      await waitForBarrier(redis, `loop${stamp}`, { keyPrefix: prefix, timeoutMs: 5_000 });
      for (const reader of readers) {
        const seen = await reader.get(0);
        checked++;
        if (seen!.stamp < stamp) stale++;
        const many = await reader.getMany([0, stamp % keys.length]);
        checked++;
        if (many[0]!.stamp < stamp || many[1]!.stamp < stamp) stale++;
      }
    }
    running = false;
    await Promise.all(hammering);
    const hits = readers.reduce((sum, reader) => sum + reader.nearCacheStats()!.hits, 0);
    console.info(`near-cache writer loop: ${checked} reads after barriers, ${stale} stale, ${hits} near-cache hits`);
    expect(stale).toBe(0);
    expect(hits).toBeGreaterThan(0);
  });
});
