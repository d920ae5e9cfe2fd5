/**
 * The near-cache rows of bench/clientRead.bench.ts (same run, same data):
 * - `get` through a reader with a near-cache, keys drawn from Zipf(1.0) over
 *   all users, against raw HGET + decode of the same keys, and the hit rate;
 * - the cost of a hit alone (keys the cache holds) against the same baseline
 *   (target: at most 0.05x);
 * - with 1,000 updates/s applied by a writer (the daemon's write path: one
 *   RedisStorageTable step per changed user, applyChanges.lua), the hit rate
 *   and the staleness: from a step's publication in Redis to the reader
 *   dropping its keys (target: p99 at most 2 ms).
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { openReader } from '../lib/client/index.ts';
import type { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import type { BenchContext } from './benchContext.ts';
import { median } from './benchTable.ts';
import type { JoinedUserRow } from './seedDatabase.ts';

const MAX_RECORDS = 10_000;
const UPDATES_PER_SECOND = 1_000;
const UPDATE_SECONDS = 5;
const SLICES = 10;
const SLICE_SECONDS = 0.2;
/** A hit resolves in a microtask: loops yield to the event loop this often, so the stream and the writer are served. */
const YIELD_EVERY = 20;

/** Draws ranks 1..n with probability proportional to 1/rank (Zipf, exponent 1.0), from a precomputed CDF. */
export function zipfSampler(n: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let rank = 1; rank <= n; rank++) cdf[rank - 1] = sum += 1 / rank;
  return () => {
    const target = random() * sum;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (cdf[mid]! < target) low = mid + 1;
      else high = mid;
    }
    return low + 1;
  };
}

async function loop(seconds: number, read: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let count = 0;
  while (performance.now() < deadline) {
    await read();
    if (++count % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return count / ((performance.now() - started) / 1000);
}

/** What the near-cache rows need from the clientRead bench's setup. */
export interface NearCacheBenchSetup {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly users: number;
  readonly raw: Redis;
  readonly recordsKey: string;
  readonly codec: MessagePackRecordCodec<JoinedUserRow>;
  readonly writer: RedisStorageTable<JoinedUserRow>;
  readonly sampleRow: (userId: number) => Promise<JoinedUserRow>;
  readonly random: () => number;
}

export async function runNearCacheRows(context: BenchContext, setup: NearCacheBenchSetup): Promise<void> {
  const { raw, recordsKey, codec, users, random } = setup;
  const zipf = zipfSampler(users, random);
  const reader = await openReader<JoinedUserRow>({ url: setup.redisUrl, table: 'users', keyPrefix: setup.prefix, nearCache: { maxRecords: MAX_RECORDS } });
  try {
    const hot = Array.from({ length: 100 }, (_, i) => i + 1);
    // Warm-up: fills the cache the way the workload does.
    await loop(1, () => reader.get(zipf()));
    await reader.getMany(hot);
    const rates: Record<'raw' | 'near' | 'hit', number[]> = { raw: [], near: [], hit: [] };
    for (let slice = 0; slice < SLICES; slice++) {
      rates.raw.push(
        await loop(SLICE_SECONDS, async () => {
          const bytes = await raw.hgetBuffer(recordsKey, String(zipf()));
          return bytes && codec.decode(bytes);
        }),
      );
      rates.near.push(await loop(SLICE_SECONDS, () => reader.get(zipf())));
      let i = 0;
      rates.hit.push(await loop(SLICE_SECONDS, () => reader.get(hot[i++ % hot.length]!)));
    }
    const ratio = (name: 'near' | 'hit') => median(rates[name].map((rate, slice) => rates.raw[slice]! / rate));
    const perRead = (rate: number) => `${(1_000_000 / rate).toFixed(2)} µs`;

    // Hit rate of the Zipf workload alone, without writes and then with 1,000 updates/s.
    const quiet = await hitRateOver(reader, 2, zipf);
    const writes = startUpdates(setup, zipfSampler(users, random));
    let busy: { hitRate: number; reads: number };
    try {
      busy = await hitRateOver(reader, UPDATE_SECONDS, zipf);
    } finally {
      await writes.stop();
    }
    const stats = reader.nearCacheStats()!;
    const staleness = stats.staleness;
    const hitRatio = ratio('hit');
    context.printTable(
      `Near-cache: get with keys from Zipf(1.0) over ${users.toLocaleString('en')} users, maxRecords ${MAX_RECORDS.toLocaleString('en')} (medians of ${SLICES} interleaved slices of ${SLICE_SECONDS} s)`,
      ['read', 'per read', 'time / raw HGET+decode', 'target'],
      [
        ['raw ioredis HGET + decode, Zipf keys (baseline)', perRead(median(rates.raw)), '1.00', ''],
        ['reader.get with near-cache, Zipf keys (hits and misses)', perRead(median(rates.near)), ratio('near').toFixed(3), ''],
        ['reader.get, a hit (100 hot keys)', perRead(median(rates.hit)), hitRatio.toFixed(3), `<= 0.05 ${hitRatio <= 0.05 ? 'met' : 'MISSED'}`],
      ],
    );
    const p99 = staleness?.p99 ?? NaN;
    context.printTable(
      `Near-cache hit rate and staleness (Zipf(1.0) gets; updates: one writer step per changed user, Zipf-chosen, paced at ${UPDATES_PER_SECOND.toLocaleString('en')}/s for ${UPDATE_SECONDS} s)`,
      ['measure', 'value', 'target'],
      [
        ['hit rate, no writes', `${(quiet.hitRate * 100).toFixed(1)}% of ${quiet.reads.toLocaleString('en')} gets`, ''],
        [`hit rate, ${UPDATES_PER_SECOND.toLocaleString('en')} updates/s`, `${(busy.hitRate * 100).toFixed(1)}% of ${busy.reads.toLocaleString('en')} gets`, ''],
        ['updates applied', `${writes.applied().toLocaleString('en')} (${(writes.applied() / UPDATE_SECONDS).toFixed(0)}/s)`, ''],
        ['staleness p50 (step published in Redis → key dropped in the reader)', `${staleness?.p50.toFixed(3) ?? '-'} ms`, ''],
        ['staleness p99', `${p99.toFixed(3)} ms`, `<= 2 ms ${p99 <= 2 ? 'met' : 'MISSED'}`],
        ['staleness max', `${staleness?.max.toFixed(3) ?? '-'} ms (${staleness?.samples ?? 0} announcements)`, ''],
      ],
    );
  } finally {
    await reader.close();
  }
}

async function hitRateOver(reader: Awaited<ReturnType<typeof openReader<JoinedUserRow>>>, seconds: number, key: () => number) {
  const before = reader.nearCacheStats()!;
  await loop(seconds, () => reader.get(key()));
  const after = reader.nearCacheStats()!;
  const hits = after.hits - before.hits;
  const reads = hits + after.misses - before.misses + after.bypasses - before.bypasses;
  return { hitRate: reads === 0 ? 0 : hits / reads, reads };
}

/** Applies updates paced at UPDATES_PER_SECOND: each one writer step that rewrites one user (the daemon's common case). */
function startUpdates(setup: NearCacheBenchSetup, key: () => number): { stop(): Promise<void>; applied(): number } {
  let running = true;
  let applied = 0;
  const started = performance.now();
  const done = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - started) / 1000) * UPDATES_PER_SECOND);
      while (applied < due && running) {
        const row = await setup.sampleRow(key());
        await setup.writer.scratchPutRecords([{ ...row, user_name: `${row.user_name.split('#')[0]}#${applied}` }]);
        await setup.writer.scratchMerge();
        applied++;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
    applied: () => applied,
  };
}
