import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { MessagePackRecordCodec } from '../../../lib/redis/recordCodec.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { mergeHalfWayAndDie } from './halfAppliedMerge.ts';
import { deleteKeysWithPrefix, fileRedis, testRedisUrl } from '../../support/redis.ts';

interface City {
  city_id: number;
  name: string;
  population: number;
}

const scorer: RecordScorer<City, number> = {
  indexNames: ['primary_key', 'population'],
  score: (indexName, city) => (indexName === 'primary_key' ? city.city_id : city.population),
  primaryKey: (city) => city.city_id,
};

const city = (city_id: number, population = city_id * 100, name = `City ${city_id}`): City => ({ city_id, name, population });

const { redis, prefix, opened } = fileRedis('reader');
let tableNumber = 0;

async function writer(options: Partial<Parameters<typeof RedisStorageTable.open<City>>[0]> = {}, table = `cities${++tableNumber}`) {
  const storage = await RedisStorageTable.open<City>({ redis, table, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  return storage;
}

async function reader<R = City>(table: string, options: Partial<Parameters<typeof openReader<R>>[0]> = {}): Promise<TableReader<R>> {
  const opened_ = await openReader<R>({ url: testRedisUrl(), table, keyPrefix: prefix, ...options });
  opened.push(opened_);
  return opened_;
}

async function loaded(records: City[], coverage: Interval[] = [Interval.everything()]) {
  const storage = await writer();
  await storage.clear();
  await storage.putRecords(records);
  await storage.markLoaded({ coverage: { primary_key: coverage, population: coverage.length ? [Interval.everything()] : [] } });
  return storage;
}

async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('openReader', () => {
  it('reads records by primary key, one or many, with undefined for keys the table lacks', async () => {
    const storage = await loaded([city(1), city(2), city(3)]);
    const users = await reader(storage.name);
    expect(await users.get(2)).toEqual(city(2));
    expect(await users.get(4)).toBeUndefined();
    expect(await users.getMany([3, 9, 1])).toEqual([city(3), undefined, city(1)]);
    expect(await users.getMany([])).toEqual([]);
    await expect(users.get(Number.NaN)).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
  });

  it('treats the number 1, the bigint 1n and the string "1" as the same primary key', async () => {
    const storage = await loaded([city(1)]);
    const users = await reader(storage.name);
    expect(await users.getMany([1, 1n, '1'])).toEqual([city(1), city(1), city(1)]);
  });

  it('reads a range of an index in ascending score order, half-open', async () => {
    const storage = await loaded([city(1, 500), city(2, 100), city(3, 300), city(4, 300), city(5, 700)]);
    const cities = await reader(storage.name);
    expect((await cities.range('population', 100, 500)).map((c) => c.city_id)).toEqual([2, 3, 4]);
    expect(await cities.range('population', 300, 300)).toEqual([]);
    expect((await cities.range('primary_key', -Infinity, Infinity)).map((c) => c.city_id)).toEqual([1, 2, 3, 4, 5]);
  });

  it('reads every interval of a StorageRecordsSpec in one call and applies its recheck predicate', async () => {
    const storage = await loaded([1, 2, 3, 4, 5, 6].map((id) => city(id)));
    const cities = await reader(storage.name);
    const spec = new StorageRecordsSpec<City>('primary_key', [new Interval(5, 7), new Interval(1, 3)], (c) => c.city_id !== 6);
    expect((await cities.records(spec)).map((c) => c.city_id).sort()).toEqual([1, 2, 5]);
  });

  it('names the table\'s indexes when asked for one it does not have', async () => {
    const storage = await loaded([city(1)]);
    const cities = await reader(storage.name);
    await expect(cities.range('area', 0, 1)).rejects.toThrow(/no index "area"; its indexes are primary_key, population/);
    await expect(cities.range('area', 0, 1)).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
  });

  it('says the table is not loaded before a writer published it, while info() answers', async () => {
    const storage = await writer();
    await storage.putRecords([city(1)]);
    const cities = await reader(storage.name);
    await expect(cities.get(1)).rejects.toMatchObject({ code: 'TC_NOT_LOADED' });
    await expect(cities.range('primary_key', 0, 10)).rejects.toMatchObject({ code: 'TC_NOT_LOADED' });
    const info = await cities.info();
    expect(info).toMatchObject({ loaded: false, recordCount: 0, generation: null });
    expect(info.writer?.id).toBe(storage.writerId);
  });

  it('reports what the writer published in info()', async () => {
    const before = Date.now();
    const storage = await loaded([city(1), city(2)]);
    const info = await (await reader(storage.name)).info();
    expect(info).toMatchObject({ loaded: true, recordCount: 2, codec: 'msgpack-1', indexNames: ['primary_key', 'population'], step: 1 });
    expect(info.generation).toBeGreaterThan(0);
    expect(info.loadedAt!.getTime()).toBeGreaterThanOrEqual(before);
    expect(info.lastRefreshAt).toEqual(info.loadedAt);
    expect(info.writer!.id).toBe(storage.writerId);
    expect(info.writer!.leaseExpiresInMs).toBeGreaterThan(0);
  });
});

describe('what readers see of writer steps', () => {
  it('sees staged scratch changes only after the merge, and the merge as one step', async () => {
    const storage = await loaded([city(1), city(2), city(3)]);
    const cities = await reader(storage.name);
    await drain(storage.scratchDiscardRecords(new StorageRecordsSpec('primary_key', [Interval.onlyContaining(1)])));
    await storage.scratchPutRecords([city(2, 900, 'Renamed'), city(4)]);
    expect((await cities.range('primary_key', 0, 10)).map((c) => c.city_id)).toEqual([1, 2, 3]);
    expect(await cities.get(2)).toEqual(city(2));
    const stepBefore = (await cities.info()).step;
    await storage.scratchMerge();
    expect((await cities.range('primary_key', 0, 10)).map((c) => c.city_id)).toEqual([2, 3, 4]);
    expect((await cities.range('population', 0, 1000)).map((c) => c.city_id)).toEqual([3, 4, 2]);
    expect(await cities.get(2)).toEqual(city(2, 900, 'Renamed'));
    expect(await cities.info()).toMatchObject({ recordCount: 3, step: stepBefore + 1 });
  });

  it('keeps reading the old data during a reload and switches to the new data at markLoaded', async () => {
    const storage = await loaded([city(1, 100, 'old'), city(2, 200, 'old')]);
    const cities = await reader(storage.name);
    const oldGeneration = (await cities.info()).generation!;
    const reloaded = await writer({}, storage.name).catch((e: unknown) => e);
    expect(reloaded).toMatchObject({ code: 'TC_LEASE_HELD' });
    await storage.close();
    const next = await writer({}, storage.name);
    await next.clear();
    await next.putRecords([city(1, 100, 'new'), city(3, 300, 'new')]);
    expect(await cities.getMany([1, 2, 3])).toEqual([city(1, 100, 'old'), city(2, 200, 'old'), undefined]);
    await next.markLoaded({ coverage: null });
    expect(await cities.getMany([1, 2, 3])).toEqual([city(1, 100, 'new'), undefined, city(3, 300, 'new')]);
    expect((await cities.info()).generation).toBeGreaterThan(oldGeneration);
    expect(await redis.exists(new TableKeys(storage.name, prefix).records(oldGeneration))).toBe(0);
  });

  it('shows a merge larger than one script call atomically, also when its writer dies half way and the next one finishes it', async () => {
    const table = `cities${++tableNumber}`;
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const storage = await RedisStorageTable.open<City>({ redis: connection, table, keyPrefix: prefix, scorer, mergeBatchSize: 3, leaseTtlMs: 300 });
    await storage.putRecords([1, 2, 3, 4, 5, 6, 7, 8].map((id) => city(id)));
    await storage.markLoaded({ coverage: null });
    await drain(storage.scratchDiscardRecords(new StorageRecordsSpec('primary_key', [new Interval(1, 5)])));
    await storage.scratchPutRecords([city(2, 250, 'back'), city(9), city(10), city(6, 50, 'moved')]);
    await mergeHalfWayAndDie(connection, storage as RedisStorageTable<unknown>);

    const cities = await reader(table);
    const expected = [city(2, 250, 'back'), city(5), city(6, 50, 'moved'), city(7), city(8), city(9), city(10)];
    const byId = (records: City[]) => [...records].sort((a, b) => a.city_id - b.city_id);
    expect(await redis.hget(new TableKeys(table, prefix).meta, 'overlay')).not.toBeNull();
    expect(byId(await cities.range('primary_key', -Infinity, Infinity))).toEqual(expected);
    expect((await cities.range('population', 0, 600)).map((c) => c.city_id)).toEqual([6, 2, 5]);
    expect(await cities.getMany([1, 2, 6, 9])).toEqual([undefined, city(2, 250, 'back'), city(6, 50, 'moved'), city(9)]);
    expect((await cities.info()).recordCount).toBe(7);

    const successor = await writer({ standby: true, leaseTtlMs: 300 }, table);
    expect(await redis.hget(new TableKeys(table, prefix).meta, 'overlay')).toBeNull();
    expect(byId(await cities.range('primary_key', -Infinity, Infinity))).toEqual(expected);
    expect((await cities.info()).recordCount).toBe(7);
    expect(byId(await drain(successor.getRecords(new StorageRecordsSpec('primary_key', [Interval.everything()]))))).toEqual(expected);
    await storage.close();
  });
});

describe('coverage', () => {
  it('answers covers() from the coverage published with markLoaded and with each merge', async () => {
    const storage = await loaded([city(1), city(2)], [new Interval(0, 5), new Interval(5, 10)]);
    const cities = await reader(storage.name);
    expect(await cities.covers('primary_key', 2, 8)).toBe(true);
    expect(await cities.covers('primary_key', 8, 11)).toBe(false);
    await storage.scratchMerge({ coverage: { primary_key: [new Interval(0, 100)] } });
    expect(await cities.covers('primary_key', 8, 11)).toBe(true);
    expect(await cities.covers('population', 0, 1)).toBe(false);
    await storage.scratchMerge({ coverage: null });
    expect(await cities.coverage()).toBeNull();
    expect(await cities.covers('primary_key', 0, 1)).toBe(false);
  });

  it('checks coverage in the same atomic read when a range requires it', async () => {
    const storage = await loaded([city(1), city(7)], [new Interval(0, 5)]);
    const cities = await reader(storage.name);
    expect(await cities.range('primary_key', 0, 5, { requireCovered: true })).toEqual([city(1)]);
    await expect(cities.range('primary_key', 0, 10, { requireCovered: true })).rejects.toMatchObject({ code: 'TC_NOT_COVERED' });
    await storage.scratchMerge({ coverage: { primary_key: [Interval.everything()], population: [] } });
    expect(await cities.range('primary_key', 0, 10, { requireCovered: true })).toEqual([city(1), city(7)]);
  });
});

describe('data a reader cannot use', () => {
  it('names the key and field of a record whose bytes do not decode', async () => {
    const storage = await loaded([city(1)]);
    const cities = await reader(storage.name);
    const recordsKey = new TableKeys(storage.name, prefix).records((await cities.info()).generation!);
    await redis.hset(recordsKey, '1', Buffer.from([0xc1]));
    const error = await cities.get(1).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TC_STORAGE_FORMAT', key: recordsKey, field: '1' });
    expect(String(error)).toContain(`"${recordsKey}", field "1"`);
    await expect(cities.range('primary_key', 0, 2)).rejects.toMatchObject({ key: recordsKey, field: '1' });
  });

  it('refuses a key layout format it does not know and says to reload the cache', async () => {
    const storage = await loaded([city(1)]);
    const cities = await reader(storage.name);
    await redis.hset(new TableKeys(storage.name, prefix).meta, 'format', '99');
    for (const read of [() => cities.get(1), () => cities.range('primary_key', 0, 2), () => cities.info(), () => cities.coverage()]) {
      await expect(read()).rejects.toThrow(/format "99".*Reload the cache/);
    }
  });

  it('opens while Redis holds a layout format it does not know, refuses reads with TC_STORAGE_FORMAT, and reads again once a writer reloads', async () => {
    const storage = await loaded([city(1)]);
    const table = storage.name;
    await storage.close();
    await redis.hset(new TableKeys(table, prefix).meta, 'format', '99');
    const cities = await reader(table);
    await expect(cities.get(1)).rejects.toMatchObject({ code: 'TC_STORAGE_FORMAT' });
    await expect(cities.info()).rejects.toThrow(/format "99".*Reload the cache/);

    // An operator clears the table and a writer of this version loads it again.
    await deleteKeysWithPrefix(redis, new TableKeys(table, prefix).base);
    const reloaded = await writer({}, table);
    await reloaded.putRecords([city(2)]);
    await reloaded.markLoaded({ coverage: null });
    expect(await cities.getMany([1, 2])).toEqual([undefined, city(2)]);
  });

  it('refuses records encoded with a codec it does not have', async () => {
    const storage = await loaded([city(1)]);
    const codec = new MessagePackRecordCodec<City>({ columns: { name: { name: 'upper', encode: (v) => v, decode: (v) => v } } });
    const cities = await reader<City>(storage.name, { codec });
    await expect(cities.get(1)).rejects.toThrow(/codec "msgpack-1", but this reader decodes "msgpack-1\+name=upper"/);
  });

  it('waits for nothing once closed', async () => {
    const storage = await loaded([city(1)]);
    const cities = await reader(storage.name);
    await cities.close();
    await expect(cities.get(1)).rejects.toMatchObject({ code: 'TC_CLOSED' });
  });
});

describe('the function library', () => {
  it('serves reads through FCALL_RO once a writer has loaded it', async () => {
    const storage = await loaded([city(1)]);
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    const commands: string[] = [];
    const sendCommand = connection.sendCommand.bind(connection);
    connection.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
      commands.push(args[0].name.toUpperCase());
      return sendCommand(...args);
    }) as Redis['sendCommand'];
    try {
      const cities = await openReader<City>({ redis: connection, table: storage.name, keyPrefix: prefix });
      expect(await cities.get(1)).toEqual(city(1));
      expect(await cities.range('primary_key', 0, 5)).toEqual([city(1)]);
      expect(commands).toEqual(['FCALL_RO', 'FCALL_RO', 'FCALL_RO']);
      await cities.close();
    } finally {
      connection.disconnect();
    }
  });
});

describe('a passed-in connection', () => {
  it('is used as is and left open by close()', async () => {
    const storage = await loaded([city(1)]);
    const cities = await openReader<City>({ redis, table: storage.name, keyPrefix: prefix });
    expect(await cities.get(1)).toEqual(city(1));
    await cities.close();
    expect(await redis.ping()).toBe('PONG');
  });

});
