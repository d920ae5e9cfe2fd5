import { performance } from 'node:perf_hooks';
import { Interval } from '../lib/core/interval.ts';
import { StorageRecordsSpec } from '../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../lib/core/storageTable.ts';
import { LocalStorageTable } from '../lib/local/index.ts';
import type { BenchContext } from './benchContext.ts';
import { settledHeapBytes } from './heapMeasurement.ts';

interface UserRecord {
  id: number;
  name: string;
  email: string;
  cityId: number;
  balance: number;
  createdAt: Date;
}

const scorer: RecordScorer<UserRecord, number> = {
  indexNames: ['primary_key', 'created_at'],
  score: (indexName, record) => (indexName === 'primary_key' ? record.id : record.createdAt.getTime()),
  primaryKey: (record) => record.id,
};

const RANGE_LENGTH = 100;
const RANGE_LENGTHS = [10, 100, 1000];
const HOT_WINDOW = 10_000;
const POINT_READS = 100_000;
const RANGE_READS = 10_000;

/** A deterministic sequence, so every run reads the same keys. */
function pseudoRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/** `count` user records with ids 0..count-1, in shuffled order (a load does not arrive sorted). */
function makeRecords(count: number): UserRecord[] {
  const random = pseudoRandom(count);
  const records: UserRecord[] = [];
  for (let id = 0; id < count; id++) {
    records.push({
      id,
      name: `user ${id}`,
      email: `user${id}@example.com`,
      cityId: id % 1000,
      balance: Math.round(random() * 1_000_000) / 100,
      createdAt: new Date(1_700_000_000_000 + id * 1000),
    });
  }
  for (let i = records.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [records[i], records[j]] = [records[j]!, records[i]!];
  }
  return records;
}

/** Best of a few timed rounds after a warm-up, so a busy neighbour or a late JIT tier skews less. */
async function opsPerSecond(count: number, op: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < Math.ceil(count / 10); i++) await op(i);
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    for (let i = 0; i < count; i++) await op(i);
    best = Math.max(best, count / ((performance.now() - start) / 1000));
  }
  return best;
}

function lowerBound(sorted: readonly UserRecord[], id: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]!.id < id) low = middle + 1;
    else high = middle;
  }
  return low;
}

interface ReadRates {
  readonly point: number;
  readonly pointBaseline: number;
  readonly range: number;
  readonly rangeBaseline: number;
}

interface TableMeasurement {
  readonly size: number;
  /** Keys drawn from the whole table. */
  readonly whole: ReadRates;
  /** Keys drawn from the first {@link HOT_WINDOW} ids: the same working set whatever the table size. */
  readonly hot: ReadRates;
  /** Range reads/s by range length, keys from the whole table. */
  readonly rangeByLength: ReadonlyMap<number, number>;
  readonly insertsPerSecond: number;
  readonly baselineInsertsPerSecond: number;
  readonly jsonBytes: number;
  readonly recordsHeap: number;
  readonly tableHeap: number;
  readonly baselineHeap: number;
}

interface Subjects {
  readonly storage: LocalStorageTable<UserRecord, number>;
  readonly byId: ReadonlyMap<number, UserRecord>;
  readonly sorted: readonly UserRecord[];
}

async function localRangeReads({ storage }: Subjects, keySpan: number, length: number): Promise<number> {
  const random = pseudoRandom(11);
  const starts = Uint32Array.from({ length: RANGE_READS }, () => Math.floor(random() * (keySpan - length)));
  return opsPerSecond(RANGE_READS, async (i) => {
    const from = starts[i]!;
    const spec = new StorageRecordsSpec<UserRecord>('primary_key', [new Interval(from, from + length)]);
    let found = 0;
    for await (const _record of storage.getRecords(spec)) found++;
    if (found !== length) throw new Error(`Range read from ${from} found ${found} records.`);
  });
}

async function measureReads(subjects: Subjects, keySpan: number): Promise<ReadRates> {
  const { storage, byId, sorted } = subjects;
  const random = pseudoRandom(7);
  const pointKeys = Uint32Array.from({ length: POINT_READS }, () => Math.floor(random() * keySpan));
  const rangeStarts = Uint32Array.from({ length: RANGE_READS }, () => Math.floor(random() * (keySpan - RANGE_LENGTH)));
  return {
    point: await opsPerSecond(POINT_READS, async (i) => {
      const id = pointKeys[i]!;
      const spec = new StorageRecordsSpec<UserRecord>('primary_key', [Interval.onlyContaining(id)], (r) => r.id === id);
      let found = 0;
      for await (const _record of storage.getRecords(spec)) found++;
      if (found !== 1) throw new Error(`Point read of id ${id} found ${found} records.`);
    }),
    pointBaseline: await opsPerSecond(POINT_READS, (i) => {
      if (byId.get(pointKeys[i]!) === undefined) throw new Error('Baseline point read missed.');
    }),
    range: await localRangeReads(subjects, keySpan, RANGE_LENGTH),
    rangeBaseline: await opsPerSecond(RANGE_READS, (i) => {
      const from = lowerBound(sorted, rangeStarts[i]!);
      if (sorted.slice(from, from + RANGE_LENGTH).length !== RANGE_LENGTH) throw new Error('Baseline range read missed.');
    }),
  };
}

async function measureTable(size: number): Promise<TableMeasurement> {
  const beforeRecords = settledHeapBytes();
  const records = makeRecords(size);
  const recordsHeap = settledHeapBytes() - beforeRecords;
  const jsonBytes = records.reduce((sum, record) => sum + Buffer.byteLength(JSON.stringify(record)), 0);

  const storage = new LocalStorageTable(scorer, { tableName: `bench-${size}` });
  let start = performance.now();
  await storage.putRecords(records);
  const insertsPerSecond = size / ((performance.now() - start) / 1000);
  const tableHeap = settledHeapBytes() - beforeRecords - recordsHeap;

  start = performance.now();
  const byId = new Map<number, UserRecord>();
  for (const record of records) byId.set(record.id, record);
  const sorted = [...records].sort((a, b) => a.id - b.id);
  const baselineInsertsPerSecond = size / ((performance.now() - start) / 1000);
  const baselineHeap = settledHeapBytes() - beforeRecords - recordsHeap - tableHeap;

  const subjects = { storage, byId, sorted };
  const rangeByLength = new Map<number, number>();
  for (const length of RANGE_LENGTHS) rangeByLength.set(length, await localRangeReads(subjects, size, length));
  return {
    size,
    whole: await measureReads(subjects, size),
    hot: await measureReads(subjects, Math.min(size, HOT_WINDOW)),
    rangeByLength,
    insertsPerSecond,
    baselineInsertsPerSecond,
    jsonBytes,
    recordsHeap,
    tableHeap,
    baselineHeap,
  };
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');
const ratio = (n: number) => n.toFixed(2);
const megabytes = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/**
 * LocalStorageTable in memory: point and 100-record range reads on 10,000 and
 * 1,000,000 records against a `Map.get` and a sorted-array binary search +
 * slice measured in the same run; how read cost grows with table size and
 * with output size; load rate; heap against the records' JSON size.
 */
export async function run(context: BenchContext): Promise<void> {
  const [small, large] = [await measureTable(10_000), await measureTable(1_000_000)];
  const measurements = [small, large];

  context.printTable(
    'LocalStorageTable reads (2 indexes; keys from the whole table; each read consumes the async iterable)',
    ['read', 'records', 'LocalStorageTable ops/s', 'baseline', 'baseline ops/s', 'LocalStorageTable / baseline'],
    measurements.flatMap(({ size, whole }) => [
      ['primary-key point read', count(size), count(whole.point), 'Map.get', count(whole.pointBaseline), ratio(whole.point / whole.pointBaseline)],
      [`${RANGE_LENGTH}-record range read`, count(size), count(whole.range), 'sorted array: binary search + slice', count(whole.rangeBaseline), ratio(whole.range / whole.rangeBaseline)],
    ]),
  );

  context.printTable(
    'Read cost against table size: ops/s at 1,000,000 records / ops/s at 10,000 (1.00 = independent of size)',
    ['read', 'keys drawn from', 'LocalStorageTable 1M / 10k', 'baseline 1M / 10k'],
    [
      ['primary-key point read', 'whole table (cache-cold at 1M)', ratio(large.whole.point / small.whole.point), ratio(large.whole.pointBaseline / small.whole.pointBaseline)],
      [`${RANGE_LENGTH}-record range read`, 'whole table (cache-cold at 1M)', ratio(large.whole.range / small.whole.range), ratio(large.whole.rangeBaseline / small.whole.rangeBaseline)],
      ['primary-key point read', `first ${count(HOT_WINDOW)} ids (same working set)`, ratio(large.hot.point / small.hot.point), ratio(large.hot.pointBaseline / small.hot.pointBaseline)],
      [`${RANGE_LENGTH}-record range read`, `first ${count(HOT_WINDOW)} ids (same working set)`, ratio(large.hot.range / small.hot.range), ratio(large.hot.rangeBaseline / small.hot.rangeBaseline)],
    ],
  );

  context.printTable(
    'Range read cost against output size (LocalStorageTable, keys from the whole table)',
    ['records in table', 'range length', 'reads/s', 'µs per read', 'ns per returned record'],
    measurements.flatMap(({ size, rangeByLength }) =>
      RANGE_LENGTHS.map((length) => {
        const perSecond = rangeByLength.get(length)!;
        return [count(size), length, count(perSecond), (1e6 / perSecond).toFixed(1), count(1e9 / perSecond / length)];
      }),
    ),
  );

  context.printTable(
    'LocalStorageTable load (putRecords of shuffled records; baseline: Map.set + sorting an array)',
    ['records', 'LocalStorageTable records/s', 'baseline records/s', 'LocalStorageTable / baseline'],
    measurements.map((m) => [count(m.size), count(m.insertsPerSecond), count(m.baselineInsertsPerSecond), ratio(m.insertsPerSecond / m.baselineInsertsPerSecond)]),
  );

  context.printTable(
    'Memory (heap after full GC)',
    ['records', 'JSON size MB', 'records heap MB', 'LocalStorageTable heap MB', 'baseline heap MB (Map + sorted array)', '(records + table) / JSON'],
    measurements.map((m) => [
      count(m.size),
      megabytes(m.jsonBytes),
      megabytes(m.recordsHeap),
      megabytes(m.tableHeap),
      megabytes(m.baselineHeap),
      ratio((m.recordsHeap + m.tableHeap) / m.jsonBytes),
    ]),
  );
}
