import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../lib/core/errors.ts';
import { Interval } from '../../lib/core/interval.ts';
import { StorageRecordsSpec, type RecheckPredicate } from '../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer, StorageTable } from '../../lib/core/storageTable.ts';

/**
 * The record shape the conformance suite stores: `pk` is the primary key and
 * the score in index `primary_key`, `score2` the score in index `secondary`.
 * Extra columns carry the value types pg returns, for the round-trip case.
 */
export interface ConformanceRecord {
  pk: number;
  name: string;
  score2: number;
  [column: string]: unknown;
}

const INDEX_SCORES: Readonly<Record<string, (record: ConformanceRecord) => number>> = {
  primary_key: (record) => record.pk,
  secondary: (record) => record.score2,
};

/** Scores {@link ConformanceRecord}s in two indexes, so every case also pins multi-index bookkeeping. */
export const conformanceScorer: RecordScorer<ConformanceRecord, number> = {
  indexNames: Object.keys(INDEX_SCORES),
  score(indexName, record) {
    const score = INDEX_SCORES[indexName];
    if (score === undefined) throw new InvalidArgumentError(`No index "${indexName}" in the conformance scorer.`);
    return score(record);
  },
  primaryKey(record) {
    return record.pk;
  },
};

/** A storage under test, and how to release everything it holds. */
export interface ConformanceSubject {
  readonly storage: StorageTable<ConformanceRecord>;
  cleanup(): Promise<void>;
}

/** Builds a fresh, empty storage for one test case. */
export type MakeConformanceStorage = (scorer: RecordScorer<ConformanceRecord, number>) => Promise<ConformanceSubject>;

function record(pk: number, score2 = pk * 10, name = `record ${pk}`): ConformanceRecord {
  return { pk, name, score2 };
}

function spec(
  indexName: 'primary_key' | 'secondary',
  intervals: readonly Interval[],
  recheckPredicate?: RecheckPredicate<ConformanceRecord>,
): StorageRecordsSpec<ConformanceRecord> {
  return new StorageRecordsSpec(indexName, intervals, recheckPredicate);
}

const everything = (indexName: 'primary_key' | 'secondary' = 'primary_key') => spec(indexName, [Interval.everything()]);

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

function byPk(records: readonly ConformanceRecord[]): ConformanceRecord[] {
  return [...records].sort((a, b) => a.pk - b.pk);
}

async function read(storage: StorageTable<ConformanceRecord>, query: StorageRecordsSpec<ConformanceRecord>) {
  return byPk(await collect(storage.getRecords(query)));
}

async function pks(storage: StorageTable<ConformanceRecord>, query: StorageRecordsSpec<ConformanceRecord>) {
  return (await read(storage, query)).map((r) => r.pk);
}

/** `scratchDiscardPrimaryKeys` of a storage that must have it (every storage this suite runs against does). */
async function discardKeys(storage: StorageTable<ConformanceRecord>, keys: readonly number[]): Promise<void> {
  if (storage.scratchDiscardPrimaryKeys === undefined) throw new Error(`${storage.name} has no scratchDiscardPrimaryKeys.`);
  await storage.scratchDiscardPrimaryKeys(keys);
}

async function* generate<T>(items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/**
 * Defines a vitest `describe` block that pins the {@link StorageTable}
 * contract, using only the interface, against the storage `makeStorage`
 * builds (a fresh one per case, cleaned up afterwards).
 *
 * @example
 * ```ts
 * describeStorageConformance('LocalStorageTable', async (scorer) => ({
 *   storage: new LocalStorageTable(scorer),
 *   cleanup: async () => {},
 * }));
 * ```
 */
export function describeStorageConformance(name: string, makeStorage: MakeConformanceStorage): void {
  describe(`${name} (StorageTable conformance)`, () => {
    let subject: ConformanceSubject | undefined;
    let storage: StorageTable<ConformanceRecord>;

    beforeEach(async () => {
      subject = await makeStorage(conformanceScorer);
      storage = subject.storage;
    });

    afterEach(async () => {
      await subject?.cleanup();
      subject = undefined;
    });

    describe('direct writes and reads', () => {
      it('finds put records by an interval of either index', async () => {
        await storage.putRecords([record(1), record(2), record(3)]);
        expect(await read(storage, spec('primary_key', [new Interval(2, 3)]))).toEqual([record(2)]);
        expect(await read(storage, spec('secondary', [new Interval(10, 30)]))).toEqual([record(1), record(2)]);
        expect(await read(storage, everything())).toEqual([record(1), record(2), record(3)]);
      });

      it('reads nothing from an empty table or with no intervals', async () => {
        expect(await read(storage, everything())).toEqual([]);
        await storage.putRecords([record(1)]);
        expect(await read(storage, spec('primary_key', []))).toEqual([]);
      });

      it('replaces a record with the same primary key', async () => {
        await storage.putRecords([record(1, 10, 'old'), record(2)]);
        await storage.putRecords([record(1, 10, 'new')]);
        expect(await read(storage, everything())).toEqual([record(1, 10, 'new'), record(2)]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 10, 'new'), record(2)]);
      });

      it('no longer finds a replaced record by its old score', async () => {
        await storage.putRecords([record(1, 10, 'old')]);
        await storage.putRecords([record(1, 50, 'moved')]);
        expect(await read(storage, spec('secondary', [new Interval(0, 20)]))).toEqual([]);
        expect(await read(storage, spec('secondary', [new Interval(50, 51)]))).toEqual([record(1, 50, 'moved')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 50, 'moved')]);
      });

      it('keeps the last of several records with the same primary key in one batch', async () => {
        await storage.putRecords([record(1, 10, 'first'), record(1, 20, 'second'), record(1, 30, 'third')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 30, 'third')]);
      });

      it('keeps records that share a score apart', async () => {
        await storage.putRecords([record(1, 7), record(2, 7), record(3, 7), record(4, 8)]);
        expect(await pks(storage, spec('secondary', [Interval.onlyContaining(7)]))).toEqual([1, 2, 3]);
        await storage.putRecords([record(2, 8)]);
        expect(await pks(storage, spec('secondary', [Interval.onlyContaining(7)]))).toEqual([1, 3]);
        expect(await pks(storage, spec('secondary', [Interval.onlyContaining(8)]))).toEqual([2, 4]);
      });

      it('treats intervals as half-open: ge included, lt excluded', async () => {
        await storage.putRecords([record(1), record(2), record(3)]);
        expect(await pks(storage, spec('primary_key', [new Interval(1, 3)]))).toEqual([1, 2]);
        expect(await pks(storage, spec('primary_key', [new Interval(2, 2)]))).toEqual([]);
        expect(await pks(storage, spec('primary_key', [Interval.onlyContaining(3)]))).toEqual([3]);
        expect(await pks(storage, spec('secondary', [new Interval(10.5, 30)]))).toEqual([2]);
      });

      it('reads several non-overlapping intervals, each record once', async () => {
        await storage.putRecords([1, 2, 3, 4, 5, 6, 7, 8].map((pk) => record(pk)));
        const query = spec('primary_key', [new Interval(6, 8), new Interval(1, 3), new Interval(3, 4)]);
        expect(await pks(storage, query)).toEqual([1, 2, 3, 6, 7]);
      });

      it('returns only records that pass the recheck predicate', async () => {
        await storage.putRecords([record(1, 5, 'keep'), record(2, 5, 'drop'), record(3, 5, 'keep')]);
        const query = spec('secondary', [Interval.onlyContaining(5)], (r) => r.name === 'keep');
        expect(await pks(storage, query)).toEqual([1, 3]);
      });

      it('handles -Infinity and Infinity as bounds, with Infinity itself outside every interval', async () => {
        await storage.putRecords([
          record(1, -Infinity),
          record(2, -Number.MAX_VALUE),
          record(3, 0),
          record(4, Number.MAX_VALUE),
          record(5, Infinity),
        ]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 2, 3, 4]);
        expect(await pks(storage, spec('secondary', [new Interval(-Infinity, 0)]))).toEqual([1, 2]);
        expect(await pks(storage, spec('secondary', [new Interval(0, Infinity)]))).toEqual([3, 4]);
        expect(await pks(storage, spec('secondary', [Interval.onlyContaining(-Infinity)]))).toEqual([1]);
      });

      it('resolves putRecords to the count, from a sync iterable or an async one', async () => {
        expect(await storage.putRecords([record(1), record(2)])).toBe(2);
        expect(await storage.putRecords(new Set([record(3)]))).toBe(1);
        expect(await storage.putRecords(generate([record(4), record(5), record(6)]))).toBe(3);
        expect(await storage.putRecords([])).toBe(0);
        expect(await pks(storage, everything())).toEqual([1, 2, 3, 4, 5, 6]);
      });

      it('stores a large batch from an async generator', async () => {
        const count = 20_000;
        async function* many(): AsyncGenerator<ConformanceRecord> {
          for (let pk = 0; pk < count; pk++) yield record(pk, count - pk);
        }
        expect(await storage.putRecords(many())).toBe(count);
        expect(await read(storage, spec('primary_key', [new Interval(10_000, 10_003)]))).toEqual([
          record(10_000, 10_000),
          record(10_001, 9_999),
          record(10_002, 9_998),
        ]);
        expect(await pks(storage, spec('secondary', [new Interval(1, 3)]))).toEqual([count - 2, count - 1]);
        expect((await collect(storage.getRecords(everything('secondary')))).length).toBe(count);
      });

      it('round-trips the value types pg returns', async () => {
        const rich: ConformanceRecord = {
          pk: 42,
          name: 'naïve 🚀 "quoted"\n',
          score2: -1.5,
          nothing: null,
          yes: true,
          no: false,
          integer: -7,
          fraction: 0.1,
          big: 2n ** 70n,
          negativeBig: -(2n ** 64n),
          empty: '',
          when: new Date('2024-02-29T12:34:56.789Z'),
          bytes: Buffer.from([0, 1, 2, 254, 255]),
          numbers: [1, 2.5, -3],
          texts: ['a', '', 'c'],
          nestedArrays: [[1, 2], [], [3]],
          json: { a: 1, b: [true, null, 'x'], c: { d: { e: 'deep' } }, f: [] },
        };
        await storage.putRecords([rich]);
        const [stored] = await collect(storage.getRecords(spec('primary_key', [Interval.onlyContaining(42)])));
        expect(stored).toStrictEqual(rich);
        expect(Buffer.isBuffer(stored?.bytes)).toBe(true);
        expect(stored?.when).toBeInstanceOf(Date);
      });
    });

    describe('deleteRecords', () => {
      it('yields the deleted records as stored and removes them from every index', async () => {
        await storage.putRecords([record(1, 5), record(2, 15), record(3, 25), record(4, 35)]);
        const deleted = await collect(storage.deleteRecords(spec('secondary', [new Interval(10, 30)])));
        expect(byPk(deleted)).toEqual([record(2, 15), record(3, 25)]);
        expect(await pks(storage, everything())).toEqual([1, 4]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 4]);
        expect(await pks(storage, spec('primary_key', [new Interval(2, 4)]))).toEqual([]);
      });

      it('deletes only records passing the recheck predicate, across several intervals', async () => {
        await storage.putRecords([record(1, 1, 'x'), record(2, 2, 'y'), record(5, 5, 'x'), record(6, 6, 'x')]);
        const query = spec('primary_key', [new Interval(0, 3), new Interval(5, 6)], (r) => r.name === 'x');
        expect(byPk(await collect(storage.deleteRecords(query))).map((r) => r.pk)).toEqual([1, 5]);
        expect(await pks(storage, everything('secondary'))).toEqual([2, 6]);
      });

      it('deletes nothing from an empty table', async () => {
        expect(await collect(storage.deleteRecords(everything()))).toEqual([]);
      });

      it('leaves the rest of several records sharing a score findable as some are deleted', async () => {
        await storage.putRecords([record(1, 7), record(2, 7), record(3, 7)]);
        const atSeven = spec('secondary', [Interval.onlyContaining(7)]);
        await collect(storage.deleteRecords(spec('primary_key', [new Interval(1, 3)])));
        expect(await pks(storage, atSeven)).toEqual([3]);
        await collect(storage.deleteRecords(spec('primary_key', [Interval.onlyContaining(3)])));
        expect(await pks(storage, atSeven)).toEqual([]);
        await storage.putRecords([record(4, 7), record(5, 7)]);
        expect(await pks(storage, atSeven)).toEqual([4, 5]);
      });

      it('lets a deleted primary key be put again', async () => {
        await storage.putRecords([record(1, 10, 'first')]);
        await collect(storage.deleteRecords(everything()));
        await storage.putRecords([record(1, 20, 'second')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 20, 'second')]);
      });
    });

    describe('clear', () => {
      it('deletes every record from every index', async () => {
        await storage.putRecords([record(1), record(2)]);
        await storage.clear();
        expect(await read(storage, everything())).toEqual([]);
        expect(await read(storage, everything('secondary'))).toEqual([]);
        await storage.putRecords([record(3)]);
        expect(await pks(storage, everything())).toEqual([3]);
      });

      it('drops staged scratch changes too', async () => {
        await storage.putRecords([record(1)]);
        await storage.scratchPutRecords([record(2)]);
        await collect(storage.scratchDiscardRecords(everything()));
        await storage.clear();
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([]);
      });

      it('drops staged scratch changes for good: the merges after the next load do not publish them', async () => {
        await storage.putRecords([record(1), record(2)]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [Interval.onlyContaining(1)])));
        await storage.scratchPutRecords([record(3)]);
        await storage.clear();
        await storage.putRecords([record(1), record(2)]);
        await storage.scratchPutRecords([record(4)]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1, 2, 4]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 2, 4]);
      });
    });

    describe('scratch space', () => {
      it('keeps scratch puts invisible until the merge, then shows them in every index', async () => {
        await storage.putRecords([record(1)]);
        expect(await storage.scratchPutRecords([record(2), record(3)])).toBe(2);
        expect(await pks(storage, everything())).toEqual([1]);
        expect(await pks(storage, everything('secondary'))).toEqual([1]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1, 2, 3]);
        expect(await pks(storage, spec('secondary', [new Interval(20, 31)]))).toEqual([2, 3]);
      });

      it('keeps the old version of a record replaced in scratch until the merge, and drops its old score after', async () => {
        await storage.putRecords([record(1, 10, 'old')]);
        await storage.scratchPutRecords([record(1, 99, 'new')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 10, 'old')]);
        await storage.scratchMerge();
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 99, 'new')]);
        expect(await read(storage, spec('secondary', [new Interval(0, 20)]))).toEqual([]);
      });

      it('merges scratch puts that share a score', async () => {
        await storage.putRecords([record(1, 7)]);
        await storage.scratchPutRecords([record(2, 7), record(3, 7), record(4, 8)]);
        await storage.scratchMerge();
        expect(await pks(storage, spec('secondary', [Interval.onlyContaining(7)]))).toEqual([1, 2, 3]);
        expect(await pks(storage, everything())).toEqual([1, 2, 3, 4]);
      });

      it('merges the last of several scratch puts with the same primary key', async () => {
        await storage.scratchPutRecords([record(1, 10, 'a')]);
        await storage.scratchPutRecords(generate([record(1, 20, 'b'), record(1, 30, 'c')]));
        await storage.scratchMerge();
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 30, 'c')]);
      });

      it('keeps discarded records readable until the merge, then removes them from every index', async () => {
        await storage.putRecords([record(1), record(2), record(3)]);
        const discarded = await collect(storage.scratchDiscardRecords(spec('secondary', [new Interval(15, 35)])));
        expect(byPk(discarded)).toEqual([record(2), record(3)]);
        expect(await pks(storage, everything())).toEqual([1, 2, 3]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 2, 3]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1]);
        expect(await pks(storage, everything('secondary'))).toEqual([1]);
      });

      it('discards only records passing the recheck predicate', async () => {
        await storage.putRecords([record(1, 1, 'x'), record(2, 2, 'y'), record(3, 3, 'x')]);
        const query = spec('primary_key', [Interval.everything()], (r) => r.name === 'x');
        const discarded = await collect(storage.scratchDiscardRecords(query));
        expect(byPk(discarded).map((r) => r.pk)).toEqual([1, 3]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([2]);
      });

      it('keeps a record discarded and then put again in scratch space', async () => {
        await storage.putRecords([record(1, 10, 'old'), record(2)]);
        await collect(storage.scratchDiscardRecords(everything()));
        await storage.scratchPutRecords([record(1, 11, 'new')]);
        expect(await read(storage, everything())).toEqual([record(1, 10, 'old'), record(2)]);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(1, 11, 'new')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 11, 'new')]);
      });

      it('drops a record put in scratch space and then discarded there, though it was never in the table', async () => {
        await storage.putRecords([record(1)]);
        await storage.scratchPutRecords([record(2), record(3)]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [new Interval(2, 3)])));
        expect(await pks(storage, everything())).toEqual([1]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1, 3]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 3]);
      });

      it('drops a record replaced in scratch space and then discarded there, old version included', async () => {
        await storage.putRecords([record(1, 10, 'old')]);
        await storage.scratchPutRecords([record(1, 20, 'new')]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [Interval.onlyContaining(1)])));
        expect(await read(storage, everything())).toEqual([record(1, 10, 'old')]);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([]);
        expect(await read(storage, everything('secondary'))).toEqual([]);
      });

      // A refresh batch may stage a record's new version (found by its primary
      // key) before another pair of the same batch discards records by a
      // column the record no longer has: the new version must survive.
      it('keeps a record put in scratch space when a later discard matches only its stored version', async () => {
        await storage.putRecords([record(1, 10, 'old'), record(2, 10)]);
        await storage.scratchPutRecords([record(1, 20, 'new')]);
        await collect(storage.scratchDiscardRecords(spec('secondary', [Interval.onlyContaining(10)])));
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(1, 20, 'new')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 20, 'new')]);
      });

      it('drops everything staged on scratchReset, so the next merge publishes only what is staged after it', async () => {
        await storage.putRecords([record(1), record(2)]);
        await storage.scratchPutRecords([record(3)]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [Interval.onlyContaining(1)])));
        await storage.scratchReset();
        expect(await pks(storage, everything())).toEqual([1, 2]);
        await storage.putRecords([record(4)]);
        await storage.scratchPutRecords([record(5)]);
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1, 2, 4, 5]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 2, 4, 5]);
      });

      it('shows reads during an open scratch session only the old state', async () => {
        await storage.putRecords([record(1, 10, 'a'), record(2, 20, 'b'), record(3, 30, 'c')]);
        await storage.scratchPutRecords([record(2, 21, 'b2'), record(4, 40, 'd')]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [Interval.onlyContaining(3)])));
        const before = [record(1, 10, 'a'), record(2, 20, 'b'), record(3, 30, 'c')];
        expect(await read(storage, everything())).toEqual(before);
        expect(await read(storage, everything('secondary'))).toEqual(before);
        expect(await read(storage, spec('secondary', [new Interval(21, 41)]))).toEqual([record(3, 30, 'c')]);
        await storage.scratchMerge();
        const after = [record(1, 10, 'a'), record(2, 21, 'b2'), record(4, 40, 'd')];
        expect(await read(storage, everything())).toEqual(after);
        expect(await read(storage, everything('secondary'))).toEqual(after);
      });

      it('runs several scratch sessions one after another', async () => {
        await storage.putRecords([record(1), record(2), record(3)]);
        await storage.scratchPutRecords([record(3, 30, 'three'), record(4)]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [Interval.onlyContaining(1)])));
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([2, 3, 4]);
        await storage.putRecords([record(1)]);
        await collect(storage.scratchDiscardRecords(spec('primary_key', [new Interval(2, 3), new Interval(4, 5)])));
        await storage.scratchPutRecords([record(6)]);
        expect(await pks(storage, everything())).toEqual([1, 2, 3, 4]);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(1), record(3, 30, 'three'), record(6)]);
      });

      it('discards by primary key without reading: absent keys ignored, a key put again replaced, nothing visible before the merge', async () => {
        await storage.putRecords([record(1, 10, 'old'), record(2), record(3)]);
        await discardKeys(storage, [1, 2, 99]);
        await storage.scratchPutRecords([record(1, 15, 'new')]);
        const before = [record(1, 10, 'old'), record(2), record(3)];
        expect(await read(storage, everything())).toEqual(before);
        expect(await read(storage, everything('secondary'))).toEqual(before);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(1, 15, 'new'), record(3)]);
        expect(await read(storage, spec('secondary', [Interval.onlyContaining(10)]))).toEqual([]);
        expect(await read(storage, spec('secondary', [Interval.onlyContaining(15)]))).toEqual([record(1, 15, 'new')]);
        expect(await pks(storage, everything('secondary'))).toEqual([1, 3]);
      });

      it('withdraws scratch puts of the keys it discards, whether or not the table held them', async () => {
        await storage.putRecords([record(1, 10, 'old'), record(3)]);
        await storage.scratchPutRecords([record(1, 20, 'new'), record(2), record(3, 30, 'kept')]);
        await discardKeys(storage, [1, 2]);
        expect(await read(storage, everything())).toEqual([record(1, 10, 'old'), record(3)]);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(3, 30, 'kept')]);
        expect(await read(storage, everything('secondary'))).toEqual([record(3, 30, 'kept')]);
      });

      it('discards by primary key in a session of many pairs, as a refresh batch does', async () => {
        await storage.putRecords([record(1), record(2), record(3), record(4)]);
        await discardKeys(storage, [1, 2]);
        await storage.scratchPutRecords([record(1, 11, 'first')]);
        await discardKeys(storage, [1, 3]);
        await storage.scratchPutRecords([record(1, 12, 'second'), record(3, 33, 'three')]);
        await discardKeys(storage, []);
        await storage.scratchMerge();
        expect(await read(storage, everything())).toEqual([record(1, 12, 'second'), record(3, 33, 'three'), record(4)]);
        expect(await read(storage, everything('secondary'))).toEqual([record(1, 12, 'second'), record(3, 33, 'three'), record(4)]);
        expect(await pks(storage, spec('secondary', [new Interval(11, 12), new Interval(30, 31)]))).toEqual([]);
      });

      it('merges an empty scratch space without change', async () => {
        await storage.putRecords([record(1)]);
        await storage.scratchMerge();
        await storage.scratchMerge();
        expect(await pks(storage, everything())).toEqual([1]);
      });

      it('accepts a coverage update with the merge and a load publication', async () => {
        await storage.putRecords([record(1), record(2)]);
        await storage.markLoaded({
          coverage: { primary_key: [new Interval(0, 10)], secondary: [new Interval(0, 100)] },
        });
        await storage.scratchPutRecords([record(3)]);
        await storage.scratchMerge({ coverage: { primary_key: [new Interval(0, 5), new Interval(7, 9)], secondary: [] } });
        await storage.scratchMerge({ coverage: null });
        expect(await pks(storage, everything())).toEqual([1, 2, 3]);
      });
    });
  });
}
