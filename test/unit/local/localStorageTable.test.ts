import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { LocalStorageTable, MessagePackStringCodec, type LocalRecordCodec } from '../../../lib/local/index.ts';
import { conformanceScorer, describeStorageConformance, type ConformanceRecord } from '../../support/storageConformance.ts';

describeStorageConformance('LocalStorageTable', async (scorer) => ({
  storage: new LocalStorageTable(scorer, { tableName: 'conformance' }),
  cleanup: async () => {},
}));

describeStorageConformance('LocalStorageTable with MessagePackStringCodec', async (scorer) => ({
  storage: new LocalStorageTable(scorer, { tableName: 'conformance-encoded', recordCodec: new MessagePackStringCodec<ConformanceRecord>() }),
  cleanup: async () => {},
}));

function record(pk: number, score2 = pk * 10, name = `record ${pk}`): ConformanceRecord {
  return { pk, name, score2 };
}

const everything = new StorageRecordsSpec<ConformanceRecord>('primary_key', [Interval.everything()]);

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function pks(storage: LocalStorageTable<ConformanceRecord, number>): Promise<number[]> {
  return (await collect(storage.getRecords(everything))).map((r) => r.pk).sort((a, b) => a - b);
}

/** Tracks whether a promise has settled, to show that a write is still held back. */
function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const tracked = { settled: false, promise };
  promise.then(
    () => (tracked.settled = true),
    () => (tracked.settled = true),
  );
  return tracked;
}

/**
 * One full event-loop turn: every microtask and ready callback has run, so a
 * write that was not held back would have finished (its input is in memory).
 */
async function drainEventLoop(): Promise<void> {
  await nextMacrotask();
  await nextMacrotask();
}

function table(): LocalStorageTable<ConformanceRecord, number> {
  return new LocalStorageTable(conformanceScorer, { tableName: 'local' });
}

describe('LocalStorageTable', () => {
  describe('direct writes during a scratch session', () => {
    it('holds putRecords back until the merge, then applies it over the merged state', async () => {
      const storage = table();
      await storage.putRecords([record(1, 10, 'loaded')]);
      await storage.scratchPutRecords([record(1, 10, 'staged')]);
      const put = track(storage.putRecords([record(1, 10, 'direct'), record(2)]));
      await drainEventLoop();
      expect(put.settled).toBe(false);
      expect(await collect(storage.getRecords(everything))).toEqual([record(1, 10, 'loaded')]);
      await storage.scratchMerge();
      expect(await put.promise).toBe(2);
      expect(await collect(storage.getRecords(everything))).toEqual([record(1, 10, 'direct'), record(2)]);
    });

    it('holds deleteRecords back until the merge, then deletes merged records too', async () => {
      const storage = table();
      await storage.putRecords([record(1)]);
      await storage.scratchPutRecords([record(2)]);
      const deletion = track(collect(storage.deleteRecords(everything)));
      await drainEventLoop();
      expect(deletion.settled).toBe(false);
      expect(await pks(storage)).toEqual([1]);
      await storage.scratchMerge();
      expect((await deletion.promise).map((r) => r.pk).sort()).toEqual([1, 2]);
      expect(await pks(storage)).toEqual([]);
    });

    it('holds writes back while only discards are staged', async () => {
      const storage = table();
      await storage.putRecords([record(1)]);
      await collect(storage.scratchDiscardRecords(everything));
      const put = track(storage.putRecords([record(2)]));
      await drainEventLoop();
      expect(put.settled).toBe(false);
      await storage.scratchMerge();
      await put.promise;
      expect(await pks(storage)).toEqual([2]);
    });

    it('releases held writes when the table is cleared', async () => {
      const storage = table();
      await storage.scratchPutRecords([record(1)]);
      const put = track(storage.putRecords([record(2)]));
      await drainEventLoop();
      expect(put.settled).toBe(false);
      await storage.clear();
      await put.promise;
      expect(await pks(storage)).toEqual([2]);
    });

    it('does not hold writes when nothing is staged', async () => {
      const storage = table();
      await storage.scratchPutRecords([]);
      await collect(storage.scratchDiscardRecords(everything));
      await storage.putRecords([record(1)]);
      expect(await collect(storage.deleteRecords(everything))).toEqual([record(1)]);
    });
  });

  describe('consistent reads', () => {
    it('gives a consumer iterating across a merge the state of its first read', async () => {
      const storage = table();
      await storage.putRecords([record(1), record(2), record(3)]);
      const iterator = storage.getRecords(everything)[Symbol.asyncIterator]();
      const first = await iterator.next();
      await collect(storage.scratchDiscardRecords(everything));
      await storage.scratchPutRecords([record(2, 20, 'new'), record(4)]);
      await storage.scratchMerge();
      const rest: ConformanceRecord[] = [];
      for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) rest.push(next.value);
      expect([first.value, ...rest]).toEqual([record(1), record(2), record(3)]);
      expect(await collect(storage.getRecords(everything))).toEqual([record(2, 20, 'new'), record(4)]);
    });

    it('gives a consumer iterating across a direct delete the state of its first read', async () => {
      const storage = table();
      await storage.putRecords([record(1), record(2)]);
      const iterator = storage.getRecords(everything)[Symbol.asyncIterator]();
      const first = await iterator.next();
      await collect(storage.deleteRecords(everything));
      const second = await iterator.next();
      expect([first.value, second.value]).toEqual([record(1), record(2)]);
      expect((await iterator.next()).done).toBe(true);
    });

    it('returns the stored instances themselves', async () => {
      const storage = table();
      const stored = record(1);
      await storage.putRecords([stored]);
      const [read] = await collect(storage.getRecords(everything));
      expect(read).toBe(stored);
    });
  });

  describe('bad input', () => {
    it('rejects a NaN score naming the primary key and the index, and stores nothing of that record', async () => {
      const storage = table();
      const put = storage.putRecords([record(1), record(2, Number.NaN)]);
      await expect(put).rejects.toThrow(InvalidArgumentError);
      await expect(put).rejects.toThrow(/primary key 2 .*NaN.*"secondary"/);
      expect(await pks(storage)).toEqual([1]);
      await expect(storage.scratchPutRecords([record(3, Number.NaN)])).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
      await storage.scratchMerge();
      expect(await pks(storage)).toEqual([1]);
    });

    it('rejects a score that is not a number', async () => {
      const storage = table();
      const bad = { pk: 5, name: 'five', score2: '5' as unknown as number };
      await expect(storage.putRecords([bad])).rejects.toThrow(/primary key 5 has score 5 in index "secondary"/);
    });

    it('rejects a read of an unknown index, naming it and the known ones', async () => {
      const storage = table();
      const unknown = new StorageRecordsSpec<ConformanceRecord>('by_name', [Interval.everything()]);
      await expect(collect(storage.getRecords(unknown))).rejects.toThrow(
        /No index "by_name".*"primary_key", "secondary"/,
      );
      await expect(collect(storage.deleteRecords(unknown))).rejects.toThrow(InvalidArgumentError);
      await expect(collect(storage.scratchDiscardRecords(unknown))).rejects.toThrow(InvalidArgumentError);
    });

    it('rejects a scorer without indexes', () => {
      const noIndexes: RecordScorer<ConformanceRecord, number> = { ...conformanceScorer, indexNames: [] };
      expect(() => new LocalStorageTable(noIndexes)).toThrow(InvalidArgumentError);
    });
  });

  describe.each([
    ['as given', () => undefined],
    ['encoded', () => new MessagePackStringCodec<{ id: string; bucket: number }>()],
  ])('records sharing a score, held %s', (_form, recordCodec) => {
    interface Tagged {
      id: string;
      bucket: number;
    }
    const scorer: RecordScorer<Tagged, string> = {
      indexNames: ['bucket'],
      score: (_index, r) => r.bucket,
      primaryKey: (r) => r.id,
    };
    const bucket = (score: number) => new StorageRecordsSpec<Tagged>('bucket', [Interval.onlyContaining(score)]);
    const ids = async (storage: LocalStorageTable<Tagged, string>, score: number) =>
      (await collect(storage.getRecords(bucket(score)))).map((r) => r.id).sort();

    it('keeps string primary keys with equal scores apart', async () => {
      const storage = new LocalStorageTable(scorer, { recordCodec: recordCodec() });
      await storage.putRecords([
        { id: 'b', bucket: 1 },
        { id: 'a', bucket: 1 },
        { id: 'c', bucket: 2 },
      ]);
      await storage.putRecords([{ id: 'a', bucket: 2 }]);
      expect(await ids(storage, 1)).toEqual(['b']);
      expect(await ids(storage, 2)).toEqual(['a', 'c']);
      expect(storage.size).toBe(3);
    });

    it('merges every staged record when the first index has shared scores', async () => {
      const storage = new LocalStorageTable(scorer, { recordCodec: recordCodec() });
      await storage.putRecords([{ id: 'a', bucket: 1 }]);
      await storage.scratchPutRecords([
        { id: 'b', bucket: 1 },
        { id: 'c', bucket: 1 },
        { id: 'd', bucket: 2 },
      ]);
      await storage.scratchMerge();
      expect(await ids(storage, 1)).toEqual(['a', 'b', 'c']);
      expect(await ids(storage, 2)).toEqual(['d']);
      expect(storage.size).toBe(4);
    });

    it('deletes one of the records sharing a score and keeps the others readable', async () => {
      const storage = new LocalStorageTable(scorer, { recordCodec: recordCodec() });
      await storage.putRecords([
        { id: 'a', bucket: 1 },
        { id: 'b', bucket: 1 },
        { id: 'c', bucket: 1 },
      ]);
      const onlyB = new StorageRecordsSpec<Tagged>('bucket', [Interval.onlyContaining(1)], (r) => r.id === 'b');
      expect(await collect(storage.deleteRecords(onlyB))).toEqual([{ id: 'b', bucket: 1 }]);
      expect(await ids(storage, 1)).toEqual(['a', 'c']);
      await collect(storage.deleteRecords(new StorageRecordsSpec<Tagged>('bucket', [Interval.onlyContaining(1)], (r) => r.id === 'a')));
      expect(await ids(storage, 1)).toEqual(['c']);
      expect(storage.size).toBe(1);
    });
  });

  describe('records held encoded (recordCodec)', () => {
    function encodedTable(recordCodec: LocalRecordCodec<ConformanceRecord> = new MessagePackStringCodec()) {
      return new LocalStorageTable(conformanceScorer, { tableName: 'encoded', recordCodec });
    }

    it('returns an equal new record on every read, not the instance that was put', async () => {
      const storage = encodedTable();
      const stored = record(1);
      await storage.putRecords([stored]);
      const [first] = await collect(storage.getRecords(everything));
      const [second] = await collect(storage.getRecords(everything));
      expect(first).toStrictEqual(stored);
      expect(first).not.toBe(stored);
      expect(second).not.toBe(first);
    });

    it('is not changed by a mutation of a record after it was put', async () => {
      const storage = encodedTable();
      const stored = record(1);
      await storage.putRecords([stored]);
      stored.name = 'mutated';
      expect(await collect(storage.getRecords(everything))).toEqual([record(1)]);
    });

    it('stores nothing of a record the codec rejects, in any index', async () => {
      const codec = new MessagePackStringCodec<ConformanceRecord>();
      const rejectingTwo: LocalRecordCodec<ConformanceRecord> = {
        encode: (r) => {
          if (r.pk === 2) throw new InvalidArgumentError('record 2 cannot be encoded');
          return codec.encode(r);
        },
        decode: (encoded) => codec.decode(encoded),
      };
      const storage = encodedTable(rejectingTwo);
      await expect(storage.putRecords([record(1), record(2)])).rejects.toThrow('record 2 cannot be encoded');
      expect(await pks(storage)).toEqual([1]);
      expect(await collect(storage.getRecords(new StorageRecordsSpec('secondary', [Interval.everything()])))).toEqual([record(1)]);
      expect(storage.size).toBe(1);
    });
  });

  describe('MessagePackStringCodec', () => {
    const seedRow = { user_id: 123_456, city_id: 457, user_name: 'User 123456', user_nickname: 'u123456', city_name: 'City 457' };

    it('writes the column names once per codec, so a seed row takes less than half its JSON size', () => {
      const codec = new MessagePackStringCodec();
      codec.encode(seedRow);
      expect(codec.encode({ ...seedRow, user_id: 123_457 }).length).toBeLessThan(JSON.stringify(seedRow).length / 2);
    });

    it('keeps numbers beyond 32 bits numbers and bigints bigints', () => {
      const codec = new MessagePackStringCodec();
      const row = { safe: 2 ** 40 + 1, negative: -(2 ** 50), big: 2n ** 40n, small: 1n };
      expect(codec.decode(codec.encode(row))).toStrictEqual(row);
    });

    it('decodes records larger than its first decode buffer, and small ones after them', () => {
      const codec = new MessagePackStringCodec();
      const large = { id: 1, text: 'x'.repeat(100_000), bytes: Buffer.alloc(10_000, 7) };
      const small = { id: 2, text: 'y' };
      const [encodedLarge, encodedSmall] = [codec.encode(large), codec.encode(small)];
      expect(codec.decode(encodedSmall)).toStrictEqual(small);
      expect(codec.decode(encodedLarge)).toStrictEqual(large);
      expect(codec.decode(encodedSmall)).toStrictEqual(small);
    });

    it('returns decoded Buffers that do not change when later records are decoded', () => {
      const codec = new MessagePackStringCodec();
      const [first, second] = [codec.encode({ bytes: Buffer.from([1, 2, 3]) }), codec.encode({ bytes: Buffer.from([9, 9, 9]) })];
      const decoded = codec.decode(first);
      codec.decode(second);
      expect(decoded).toStrictEqual({ bytes: Buffer.from([1, 2, 3]) });
    });

    it('rejects a value that is not an object of columns, naming what it got', () => {
      const codec = new MessagePackStringCodec();
      expect(() => codec.encode([1, 2] as never)).toThrow(InvalidArgumentError);
      expect(() => codec.encode(null as never)).toThrow(/got null/);
      expect(() => codec.encode('text' as never)).toThrow(/got string/);
    });
  });

  describe('published state', () => {
    it('remembers the load and the last coverage merged, and forgets both on clear', async () => {
      const storage = table();
      expect(storage.published).toEqual({ loaded: false, coverage: null });
      const loaded = { primary_key: [new Interval(0, 10)], secondary: [Interval.everything()] };
      await storage.markLoaded({ coverage: loaded });
      expect(storage.published).toEqual({ loaded: true, coverage: loaded });
      await storage.scratchMerge();
      expect(storage.published.coverage).toBe(loaded);
      const adjusted = { primary_key: [new Interval(5, 15)], secondary: [] };
      await storage.scratchPutRecords([record(12)]);
      await storage.scratchMerge({ coverage: adjusted });
      expect(storage.published).toEqual({ loaded: true, coverage: adjusted });
      await storage.scratchMerge({ coverage: null });
      expect(storage.published).toEqual({ loaded: true, coverage: null });
      await storage.clear();
      expect(storage.published).toEqual({ loaded: false, coverage: null });
    });
  });

  describe('size', () => {
    it('counts the records reads can see, not staged ones', async () => {
      const storage = table();
      await storage.putRecords([record(1), record(2)]);
      await storage.scratchPutRecords([record(3), record(4)]);
      await collect(storage.scratchDiscardRecords(new StorageRecordsSpec('primary_key', [Interval.onlyContaining(1)])));
      expect(storage.size).toBe(2);
      await storage.scratchMerge();
      expect(storage.size).toBe(3);
    });
  });
});
