/**
 * The library core's load path (issue 2): `CachedTable.load` of all
 * 1,000,000 joined rows of the seed schema from Postgres (PostgresAccess)
 * into a LocalStorageTable, holding records as given and encoded
 * (MessagePackStringCodec), against PostgresAccess streaming alone and a
 * plain Map filled from the same stream, in alternating rounds of one run.
 * Then primary-key and 100-record range reads through CachedTable on 10,000
 * and 1,000,000 rows, against Map.get and a sorted-array slice.
 *
 * Targets: load ≥ 150,000 rows/s; peak RSS < 2× the records' JSON size;
 * range reads proportional to output, not to table size.
 *
 * Memory is measured in this process: a full GC before each pass, RSS
 * sampled every 5 ms during it, and the heap kept after another full GC.
 * Peak RSS is reported above the idle RSS measured once before the first
 * pass (node, the loader and pg), which is not the records' cost.
 */
import {
  CachedTable,
  PrimaryKeyIndexes,
  PrimaryKeyRangeIndexes,
  type PrimaryKeyRangeSpec,
  type PrimaryKeySpec,
  type PrimaryKeySpecArgs,
  QueryArgsDbRecordsSpec,
  type RecordScorer,
} from '../lib/core/index.ts';
import { LocalStorageTable, MessagePackStringCodec } from '../lib/local/index.ts';
import { PostgresAccess } from '../lib/postgres/index.ts';
import type { BenchContext } from './benchContext.ts';
import { type BenchCell, elapsedMs, mebibytes, median, opsPerSecond, sampleRss } from './benchTable.ts';
import { collectGarbage, settledHeapBytes } from './heapMeasurement.ts';
import {
  JOINED_USERS_QUERY,
  JOINED_USERS_RANGE_QUERY,
  JOINED_USERS_SOME_QUERY,
  type JoinedUserRow,
  seedJoinedUsers,
} from './seedDatabase.ts';

const ROWS = 1_000_000;
const SMALL_ROWS = 10_000;
const CITIES = 1_000;
// Alternating rounds spread JIT warm-up and the neighbours' load over every variant.
const LOAD_ROUNDS = 3;
const READ_ROUNDS = 3;
const POINT_READS = 20_000;
const RANGE_READS = 2_000;
const RANGE_LENGTH = 100;
const RANGE_LENGTHS = [10, 100, 1_000];

const LOAD_TARGET_ROWS_PER_SECOND = 150_000;
const RSS_TARGET_OVER_JSON = 2;

const EXPECTED_CHECKSUM = (ROWS * (ROWS + 1)) / 2;

type StorageMode = 'as given' | 'encoded';
const STORAGE_MODES: readonly StorageMode[] = ['as given', 'encoded'];

type PkTable = CachedTable<JoinedUserRow, number, PrimaryKeySpec<number>, PrimaryKeySpecArgs<number>>;
type RangeTable = CachedTable<JoinedUserRow, number, PrimaryKeyRangeSpec, [range: { ge: number; lt: number }]>;

function localStorageTable(scorer: RecordScorer<JoinedUserRow, number>, mode: StorageMode): LocalStorageTable<JoinedUserRow, number> {
  return new LocalStorageTable(scorer, mode === 'encoded' ? { recordCodec: new MessagePackStringCodec<JoinedUserRow>() } : {});
}

/** A CachedTable over every user (or the first `upTo`), PrimaryKeyIndexes (point lookups by user_id), loaded. */
async function loadedPkTable(access: PostgresAccess, mode: StorageMode, upTo = ROWS): Promise<{ table: PkTable; loaded: number }> {
  // PrimaryKeyIndexes runs its query for all keys without parameters; `upTo` is one of this file's integer constants.
  const queryAll = upTo === ROWS ? JOINED_USERS_QUERY : `${JOINED_USERS_QUERY}\n  WHERE user_id <= ${upTo}`;
  const indexes = new PrimaryKeyIndexes<JoinedUserRow, number>((row) => row.user_id, queryAll, JOINED_USERS_SOME_QUERY);
  const table: PkTable = new CachedTable(indexes, access, localStorageTable(indexes, mode));
  const { loaded } = await table.load('primary_key', { all: true });
  return { table, loaded };
}

/** A CachedTable over users 1..upTo with PrimaryKeyRangeIndexes (ranges of user_id), loaded. */
async function loadedRangeTable(access: PostgresAccess, mode: StorageMode, upTo: number): Promise<RangeTable> {
  const indexes = new PrimaryKeyRangeIndexes<JoinedUserRow>((row) => row.user_id, JOINED_USERS_RANGE_QUERY);
  const table: RangeTable = new CachedTable(indexes, access, localStorageTable(indexes, mode));
  const { loaded } = await table.load('primary_key', { ge: 1, lt: upTo + 1 });
  if (loaded !== upTo) throw new Error(`The range table loaded ${loaded} rows; expected ${upTo}.`);
  return table;
}

function allRows(access: PostgresAccess): AsyncIterable<JoinedUserRow> {
  return access.getRecords(new QueryArgsDbRecordsSpec<JoinedUserRow>(JOINED_USERS_QUERY, []));
}

interface LoadPass {
  readonly rowsPerSecond: number;
  readonly peakRssBytes: number;
  /** Heap still reachable after the pass (full GC), less the heap before it. */
  readonly keptHeapBytes: number;
}

/** What the pass being measured built, kept reachable here (not in a local the compiler may drop) until its heap is measured. */
const heldForMeasurement: { built?: unknown } = {};

/**
 * Times one load from a settled heap, sampling RSS while it runs; then
 * measures the heap of what it built and lets it go.
 */
async function measureLoad(load: () => Promise<{ rows: number; built: unknown }>): Promise<LoadPass> {
  const heapBefore = settledHeapBytes();
  const sampler = sampleRss();
  const started = performance.now();
  const { rows, built } = await load();
  const ms = elapsedMs(started);
  const { peakBytes } = sampler.stop();
  if (rows !== ROWS) throw new Error(`A load pass stored ${rows} rows; expected ${ROWS}.`);
  heldForMeasurement.built = built;
  const keptHeapBytes = settledHeapBytes() - heapBefore;
  heldForMeasurement.built = undefined;
  return { rowsPerSecond: opsPerSecond(rows, ms), peakRssBytes: peakBytes, keptHeapBytes };
}

const LOAD_VARIANTS: readonly { readonly name: string; readonly load: (access: PostgresAccess) => Promise<{ rows: number; built: unknown }> }[] = [
  {
    name: 'baseline: PostgresAccess streaming alone',
    load: async (access) => {
      let rows = 0;
      let checksum = 0;
      for await (const row of allRows(access)) {
        rows++;
        checksum += row.user_id;
      }
      if (checksum !== EXPECTED_CHECKSUM) throw new Error(`Streamed user_ids sum to ${checksum}; expected ${EXPECTED_CHECKSUM}.`);
      return { rows, built: null };
    },
  },
  {
    name: 'baseline: Map by user_id filled from the stream',
    load: async (access) => {
      const byUserId = new Map<number, JoinedUserRow>();
      for await (const row of allRows(access)) byUserId.set(row.user_id, row);
      return { rows: byUserId.size, built: byUserId };
    },
  },
  ...STORAGE_MODES.map((mode) => ({
    name: `CachedTable.load → LocalStorageTable, records ${mode === 'encoded' ? 'encoded (MessagePackStringCodec)' : 'as given'}`,
    load: async (access: PostgresAccess) => {
      const { table, loaded } = await loadedPkTable(access, mode);
      return { rows: loaded, built: table };
    },
  })),
];

/** JSON (UTF-8) bytes of every row, bigints as strings, and the heap of the row objects alone. */
async function measureRows(access: PostgresAccess): Promise<{ jsonBytes: number; rowObjectsHeapBytes: number }> {
  // Filled before the heap is measured, so that its slots are not counted as the rows' cost.
  const rows = new Array<JoinedUserRow | null>(ROWS).fill(null);
  const heapBefore = settledHeapBytes();
  let count = 0;
  for await (const row of allRows(access)) rows[count++] = row;
  const rowObjectsHeapBytes = settledHeapBytes() - heapBefore;
  let jsonBytes = 0;
  const bigintAsString = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
  for (const row of rows) jsonBytes += Buffer.byteLength(JSON.stringify(row, bigintAsString));
  if (count !== ROWS) throw new Error(`Read ${count} rows; expected ${ROWS}.`);
  return { jsonBytes, rowObjectsHeapBytes };
}

/** A deterministic sequence, so every variant reads the same keys. */
function pseudoRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/** `count` integers in [1, max], the same for a given seed. */
function keysUpTo(max: number, count: number, seed: number): Int32Array {
  const random = pseudoRandom(seed);
  return Int32Array.from({ length: count }, () => 1 + Math.floor(random() * max));
}

/** Operations per second of `op` over `count` calls (awaited when they return a promise), after a warm-up of a tenth. */
async function timeOps(count: number, op: (i: number) => Promise<void> | void): Promise<number> {
  const runOps = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const pending = op(i);
      if (pending !== undefined) await pending;
    }
  };
  await runOps(Math.ceil(count / 10));
  const started = performance.now();
  await runOps(count);
  return opsPerSecond(count, elapsedMs(started));
}

async function pointRead(table: PkTable, id: number): Promise<void> {
  const row = await table.getFirstRecord('primary_key', id);
  if (row.user_id !== id) throw new Error(`Read user ${row.user_id} for key ${id}.`);
}

async function rangeRead(table: RangeTable, ge: number, length: number): Promise<void> {
  let found = 0;
  for await (const _row of table.getRecords('primary_key', { ge, lt: ge + length })) found++;
  if (found !== length) throw new Error(`Range [${ge}, ${ge + length}) found ${found} rows.`);
}

/** Rows sorted by user_id, and a Map of them: the plain structures the reads are held against. */
interface PlainRows {
  readonly byUserId: ReadonlyMap<number, JoinedUserRow>;
  readonly sorted: readonly JoinedUserRow[];
}

function lowerBound(sorted: readonly JoinedUserRow[], userId: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]!.user_id < userId) low = middle + 1;
    else high = middle;
  }
  return low;
}

function plainRangeRead({ sorted }: PlainRows, ge: number, length: number): void {
  const from = lowerBound(sorted, ge);
  if (sorted.slice(from, from + length).length !== length) throw new Error(`Baseline range from ${ge} missed.`);
}

interface ReadSubjects {
  readonly pk: Readonly<Record<StorageMode, PkTable>>;
  readonly range: Readonly<Record<StorageMode, RangeTable>>;
  readonly plain: PlainRows;
}

interface ReadRates {
  readonly point: Readonly<Record<StorageMode | 'baseline', number>>;
  readonly range: Readonly<Record<StorageMode | 'baseline', number>>;
}

/**
 * Median ops/s of point and 100-record range reads per variant, variants
 * alternating within each round, with keys drawn from the first `keySpan` user ids.
 */
async function measureReads({ pk, range, plain }: ReadSubjects, keySpan: number): Promise<ReadRates> {
  const pointKeys = keysUpTo(keySpan, POINT_READS, 7);
  const rangeStarts = keysUpTo(keySpan - RANGE_LENGTH + 1, RANGE_READS, 11);
  const samples = { point: { 'as given': [] as number[], encoded: [] as number[], baseline: [] as number[] }, range: { 'as given': [] as number[], encoded: [] as number[], baseline: [] as number[] } };
  for (let round = 0; round < READ_ROUNDS; round++) {
    for (const mode of STORAGE_MODES) {
      samples.point[mode].push(await timeOps(POINT_READS, (i) => pointRead(pk[mode], pointKeys[i]!)));
      samples.range[mode].push(await timeOps(RANGE_READS, (i) => rangeRead(range[mode], rangeStarts[i]!, RANGE_LENGTH)));
    }
    samples.point.baseline.push(
      await timeOps(POINT_READS, (i) => {
        if (plain.byUserId.get(pointKeys[i]!) === undefined) throw new Error('Baseline point read missed.');
      }),
    );
    samples.range.baseline.push(await timeOps(RANGE_READS, (i) => plainRangeRead(plain, rangeStarts[i]!, RANGE_LENGTH)));
  }
  const medians = (bySubject: Record<StorageMode | 'baseline', number[]>) => ({
    'as given': median(bySubject['as given']),
    encoded: median(bySubject.encoded),
    baseline: median(bySubject.baseline),
  });
  return { point: medians(samples.point), range: medians(samples.range) };
}

async function plainRows(access: PostgresAccess): Promise<PlainRows> {
  const rows: JoinedUserRow[] = [];
  for await (const row of allRows(access)) rows.push(row);
  rows.sort((a, b) => a.user_id - b.user_id);
  return { sorted: rows, byUserId: new Map(rows.map((row) => [row.user_id, row])) };
}

function smallPlainRows(plain: PlainRows): PlainRows {
  const sorted = plain.sorted.slice(0, SMALL_ROWS);
  return { sorted, byUserId: new Map(sorted.map((row) => [row.user_id, row])) };
}

async function readSubjects(access: PostgresAccess, size: number, plain: PlainRows): Promise<ReadSubjects> {
  const pk = { 'as given': (await loadedPkTable(access, 'as given', size)).table, encoded: (await loadedPkTable(access, 'encoded', size)).table };
  const range = { 'as given': await loadedRangeTable(access, 'as given', size), encoded: await loadedRangeTable(access, 'encoded', size) };
  return { pk, range, plain };
}

const spread = (values: readonly number[]) => `${Math.round(Math.min(...values)).toLocaleString('en-US')}–${Math.round(Math.max(...values)).toLocaleString('en-US')}`;

/** Seeds the join, measures the load passes and the reads, and prints their tables. */
export async function run(context: BenchContext): Promise<void> {
  await using db = await context.createDatabase('local_load');
  context.note(`seeding ${ROWS.toLocaleString('en-US')} users in ${CITIES} cities`);
  await seedJoinedUsers(db.url, { users: ROWS, cities: CITIES });
  await using access = new PostgresAccess({ connectionString: db.url, max: 1 });
  // Every pass starts with an open connection: connecting is not what is measured.
  for await (const _ of access.getRecords(new QueryArgsDbRecordsSpec('SELECT 1', [])));

  collectGarbage();
  const idleRssBytes = process.memoryUsage.rss();
  const passes = LOAD_VARIANTS.map(() => [] as LoadPass[]);
  for (let round = 1; round <= LOAD_ROUNDS; round++) {
    for (const [i, variant] of LOAD_VARIANTS.entries()) passes[i]!.push(await measureLoad(() => variant.load(access)));
    context.note(`load round ${round}/${LOAD_ROUNDS} done`);
  }
  // After the load passes: holding every row at once raises the RSS the later passes would start from.
  const { jsonBytes, rowObjectsHeapBytes } = await measureRows(access);

  const streaming = median(passes[0]!.map((p) => p.rowsPerSecond));
  const loadRows: BenchCell[][] = LOAD_VARIANTS.map(({ name }, i) => {
    const variantPasses = passes[i]!;
    const rate = median(variantPasses.map((p) => p.rowsPerSecond));
    const peakAboveIdle = median(variantPasses.map((p) => p.peakRssBytes - idleRssBytes));
    // A pass that keeps nothing can measure a few bytes below zero.
    const kept = Math.max(0, median(variantPasses.map((p) => p.keptHeapBytes)));
    return [name, Math.round(rate), spread(variantPasses.map((p) => p.rowsPerSecond)), rate / streaming, mebibytes(peakAboveIdle), peakAboveIdle / jsonBytes, mebibytes(kept), kept / jsonBytes];
  });
  context.printTable(
    `Load of ${ROWS.toLocaleString('en-US')} joined rows from Postgres (median of ${LOAD_ROUNDS} alternating rounds; rows' JSON ${mebibytes(jsonBytes).toFixed(1)} MiB; idle RSS ${mebibytes(idleRssBytes).toFixed(0)} MiB)`,
    ['path', 'rows/s', 'rows/s min–max', 'rows/s ÷ streaming', 'peak RSS above idle (MiB)', 'peak RSS above idle ÷ JSON', 'heap kept (MiB)', 'heap kept ÷ JSON'],
    [...loadRows, ['target (issue 2)', `≥ ${LOAD_TARGET_ROWS_PER_SECOND.toLocaleString('en-US')}`, null, null, null, `< ${RSS_TARGET_OVER_JSON}`, null, null]],
  );

  const perRow = (bytes: number) => bytes / ROWS;
  const keptMedian = (i: number) => median(passes[i]!.map((p) => p.keptHeapBytes));
  context.printTable(
    'What one row costs (heap after full GC, per row)',
    ['held as', 'bytes per row', '÷ JSON'],
    [
      ['JSON text (UTF-8), for reference', perRow(jsonBytes), 1],
      ['pg row objects alone', perRow(rowObjectsHeapBytes), rowObjectsHeapBytes / jsonBytes],
      ['baseline: Map by user_id of the row objects', perRow(keptMedian(1)), keptMedian(1) / jsonBytes],
      ['LocalStorageTable, records as given (row objects + index)', perRow(keptMedian(2)), keptMedian(2) / jsonBytes],
      ['LocalStorageTable, records encoded (strings + index)', perRow(keptMedian(3)), keptMedian(3) / jsonBytes],
    ],
  );

  context.note('loading the read tables (10,000 and 1,000,000 rows, both storage modes, pk and range indexes)');
  const plainLarge = await plainRows(access);
  const small = await measureReads(await readSubjects(access, SMALL_ROWS, smallPlainRows(plainLarge)), SMALL_ROWS);
  const largeSubjects = await readSubjects(access, ROWS, plainLarge);
  const large = await measureReads(largeSubjects, ROWS);
  const largeHot = await measureReads(largeSubjects, SMALL_ROWS);

  const readRow = (read: string, size: number, rates: ReadRates['point'], baseline: string): BenchCell[] => [
    read,
    size,
    Math.round(rates['as given']),
    Math.round(rates.encoded),
    rates.encoded / rates['as given'],
    baseline,
    Math.round(rates.baseline),
    rates['as given'] / rates.baseline,
  ];
  context.printTable(
    `Reads through CachedTable (ops/s, median of ${READ_ROUNDS} rounds; keys drawn from the whole table)`,
    ['read', 'rows in table', 'as given ops/s', 'encoded ops/s', 'encoded ÷ as given', 'baseline', 'baseline ops/s', 'as given ÷ baseline'],
    [
      readRow('primary-key read (getFirstRecord, PrimaryKeyIndexes)', SMALL_ROWS, small.point, 'Map.get'),
      readRow('primary-key read (getFirstRecord, PrimaryKeyIndexes)', ROWS, large.point, 'Map.get'),
      readRow(`${RANGE_LENGTH}-record range read (getRecords, PrimaryKeyRangeIndexes)`, SMALL_ROWS, small.range, 'sorted array: binary search + slice'),
      readRow(`${RANGE_LENGTH}-record range read (getRecords, PrimaryKeyRangeIndexes)`, ROWS, large.range, 'sorted array: binary search + slice'),
    ],
  );
  context.printTable(
    `Read cost against table size: ops/s at ${ROWS.toLocaleString('en-US')} rows ÷ ops/s at ${SMALL_ROWS.toLocaleString('en-US')} (1.00 = independent of table size; target: range reads depend on output, not table size)`,
    ['read', 'keys on the 1M table drawn from', 'as given 1M ÷ 10k', 'encoded 1M ÷ 10k', 'baseline 1M ÷ 10k'],
    [large, largeHot].flatMap((rates, i) => {
      const keys = i === 0 ? 'all user ids (working set 100× larger)' : `user ids 1–${SMALL_ROWS.toLocaleString('en-US')} (same keys as on the 10k table)`;
      const ratios = (read: 'point' | 'range') => [rates[read]['as given'] / small[read]['as given'], rates[read].encoded / small[read].encoded, rates[read].baseline / small[read].baseline];
      return [
        ['primary-key read', keys, ...ratios('point')],
        [`${RANGE_LENGTH}-record range read`, keys, ...ratios('range')],
      ];
    }),
  );

  const byLength: BenchCell[][] = [];
  for (const length of RANGE_LENGTHS) {
    const starts = keysUpTo(ROWS - length + 1, RANGE_READS, 13);
    const asGiven = await timeOps(RANGE_READS, (i) => rangeRead(largeSubjects.range['as given'], starts[i]!, length));
    const encoded = await timeOps(RANGE_READS, (i) => rangeRead(largeSubjects.range.encoded, starts[i]!, length));
    byLength.push([length, Math.round(asGiven), 1e9 / asGiven / length, Math.round(encoded), 1e9 / encoded / length]);
  }
  context.printTable(
    `Range reads against output size (CachedTable.getRecords on ${ROWS.toLocaleString('en-US')} rows, one round)`,
    ['range length', 'as given reads/s', 'as given ns per row returned', 'encoded reads/s', 'encoded ns per row returned'],
    byLength,
  );
}
