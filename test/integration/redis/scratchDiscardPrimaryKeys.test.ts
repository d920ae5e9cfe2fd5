import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable, type RedisStorageTableOptions } from '../../../lib/redis/redisStorageTable.ts';
import { readGenerationCounts } from '../../../lib/redis/writerProtocol.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';
import { idRange as range, idScoreRows as rows, idScoreScorer as scorer, type IdScoreRow as Row } from '../../support/idScoreRows.ts';

// The refresh's delete by primary key (scratchDiscardPrimaryKeys) against a
// real Redis: what readers see after the merge, the record count the merge
// publishes, and that a small session costs no round trip before the merge.

const { redis, prefix, opened } = fileRedis('blinddiscard');
let tableNumber = 0;

interface Loaded {
  readonly storage: RedisStorageTable<Row>;
  readonly reader: TableReader<Row>;
  readonly keys: TableKeys;
}

/** A writer whose published table holds `ids` (score = id), and a reader of it. */
async function loaded(ids: readonly number[], options: Partial<RedisStorageTableOptions<Row>> = {}): Promise<Loaded> {
  const table = `t${++tableNumber}`;
  const storage = await RedisStorageTable.open<Row>({ redis, table, keyPrefix: prefix, scorer, ...options });
  opened.push(storage);
  await storage.putRecords(rows(ids));
  await storage.markLoaded({ coverage: null });
  const reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
  opened.push(reader);
  return { storage, reader, keys: new TableKeys(table, prefix) };
}

/** The live generation's records hash, each index, and the count the meta hash publishes. */
async function counts(keys: TableKeys): Promise<{ meta: number | null; records: number; indexes: number[] }> {
  const generation = Number(await redis.hget(keys.meta, 'gen'));
  const read = await readGenerationCounts(redis, keys, generation, scorer.indexNames);
  return { meta: read.liveRecordCount, records: read.records, indexes: read.indexes };
}

async function ids(reader: TableReader<Row>, ge = -Infinity, lt = Infinity): Promise<number[]> {
  return (await reader.range('score', ge, lt)).map((row) => row.id).sort((a, b) => a - b);
}

describe('RedisStorageTable.scratchDiscardPrimaryKeys', () => {
  it('replaces and deletes records by key in a small session, ignoring absent keys, with the published count right', async () => {
    const { storage, reader, keys } = await loaded(range(1, 5));
    await storage.scratchDiscardPrimaryKeys([1, 2, 99, 98]);
    await storage.scratchPutRecords([{ id: 1, score: 50 }]);
    expect(await ids(reader)).toEqual([1, 2, 3, 4, 5]);
    expect(await reader.get(1)).toEqual({ id: 1, score: 1 });
    expect((await reader.info()).recordCount).toBe(5);
    await storage.scratchMerge();
    expect(await ids(reader)).toEqual([1, 3, 4, 5]);
    expect(await reader.get(1)).toEqual({ id: 1, score: 50 });
    expect(await reader.get(2)).toBeUndefined();
    expect(await ids(reader, 1, 2)).toEqual([]);
    expect(await ids(reader, 50, 51)).toEqual([1]);
    expect((await reader.info()).recordCount).toBe(4);
    expect(await counts(keys)).toEqual({ meta: 4, records: 4, indexes: [4, 4] });
  });

  it('withdraws puts staged earlier in the session, of records new or replaced', async () => {
    const { storage, reader, keys } = await loaded(range(1, 3));
    await storage.scratchPutRecords([{ id: 2, score: 20 }, { id: 7, score: 70 }, { id: 3, score: 30 }]);
    await storage.scratchDiscardPrimaryKeys([2, 7]);
    expect(await ids(reader)).toEqual([1, 2, 3]);
    await storage.scratchMerge();
    expect(await reader.range('score', -Infinity, Infinity)).toEqual([{ id: 1, score: 1 }, { id: 3, score: 30 }]);
    expect(await counts(keys)).toEqual({ meta: 2, records: 2, indexes: [2, 2] });
  });

  // 600 keys are more than a session may hold back in memory: they are staged in Redis (stageDiscard.lua).
  it('does the same for a session too large to hold back, counting only keys that had records', async () => {
    const { storage, reader, keys } = await loaded(range(1, 1_000));
    await storage.scratchPutRecords(rows([950, 5_000], 10_000));
    await storage.scratchDiscardPrimaryKeys([...range(1, 600), ...range(2_000, 2_049), 950, 5_000]);
    await storage.scratchPutRecords(rows(range(1, 300), 10_000));
    expect(await ids(reader, 10_000)).toEqual([]);
    expect((await reader.info()).recordCount).toBe(1_000);
    await storage.scratchMerge();
    expect(await ids(reader)).toEqual([...range(1, 300), ...range(601, 949), ...range(951, 1_000)]);
    expect(await ids(reader, -Infinity, 10_000)).toEqual([...range(601, 949), ...range(951, 1_000)]);
    expect(await ids(reader, 10_000)).toEqual(range(1, 300));
    expect((await reader.info()).recordCount).toBe(699);
    expect(await counts(keys)).toEqual({ meta: 699, records: 699, indexes: [699, 699] });
  });

  it('stages in bounded calls when merges are bounded, with the same result', async () => {
    const { storage, reader, keys } = await loaded(range(1, 20), { mergeBatchSize: 3 });
    await storage.scratchPutRecords(rows([4, 30], 100));
    await storage.scratchDiscardPrimaryKeys([...range(1, 10), 30, 31]);
    await storage.scratchPutRecords(rows([1, 2], 100));
    await storage.scratchMerge();
    expect(await ids(reader)).toEqual([1, 2, ...range(11, 20)]);
    expect(await ids(reader, 100)).toEqual([1, 2]);
    expect(await counts(keys)).toEqual({ meta: 12, records: 12, indexes: [12, 12] });
  });

  it('costs no round trip in a small session: the merge is the first and only command', async () => {
    const connection = new Redis(testRedisUrl(), { lazyConnect: true });
    await connection.connect();
    try {
      // A long lease: no renewal (nor function check) falls into the counted window.
      const { storage, reader } = await loaded(range(1, 5), { redis: connection, leaseTtlMs: 600_000 });
      const commands: string[] = [];
      const sendCommand = connection.sendCommand.bind(connection);
      connection.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
        commands.push(args[0].name.toLowerCase());
        return sendCommand(...args);
      }) as Redis['sendCommand'];

      await storage.scratchDiscardPrimaryKeys([1, 2]);
      await storage.scratchPutRecords([{ id: 1, score: 10 }]);
      expect(commands).toEqual([]);
      await storage.scratchMerge();
      expect(commands).toEqual(['evalsha']);
      expect(await ids(reader)).toEqual([1, 3, 4, 5]);

      // The reading discard, for contrast, reads before it can stage anything.
      commands.length = 0;
      for await (const row of storage.scratchDiscardRecords(new StorageRecordsSpec<Row>('primary_key', [Interval.onlyContaining(3)]))) void row;
      expect(commands.length).toBeGreaterThan(0);
      await storage.scratchMerge();
    } finally {
      // The storage (closed after the test) uses the connection: close it first.
      for (const thing of opened.splice(0).reverse()) await thing.close();
      connection.disconnect();
    }
  });
});
