/**
 * The near-cache rows of bench/clientRead.bench.ts (same run, same data):
 * - `get` through a reader with a near-cache, keys drawn from Zipf(1.0) over
 *   all users, against raw HGET + decode of the same keys, and the hit rate;
 * - the cost of a hit alone (keys the cache holds) against the same baseline
 *   (target: at most 0.05x);
 * - with 1,000 single-row UPDATEs/s (Zipf-chosen users) committed to
 *   Postgres and applied by the daemon (a child process, as in
 *   daemon.bench.ts), the hit rate and the staleness: from a step's
 *   publication in Redis to the reader dropping its keys (target: p99 at
 *   most 2 ms).
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { openReader } from '../lib/client/index.ts';
import type { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import type { BenchContext } from './benchContext.ts';
import { installBenchTriggers, startDaemon, writeConfig } from './daemon.bench.ts';
import { median } from './benchTable.ts';
import type { JoinedUserRow } from './seedDatabase.ts';

const MAX_RECORDS = 10_000;
const UPDATES_PER_SECOND = 1_000;
const UPDATE_SECONDS = 5;
const UPDATE_CONNECTIONS = 8;
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
  /** The bench's writer: closed before the daemon takes the table over. */
  readonly writer: RedisStorageTable<JoinedUserRow>;
  readonly databaseUrl: string;
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
    // The daemon takes the table over: it reloads it (announced as "all") and then refreshes each changed user.
    await setup.writer.close();
    const pool = new pg.Pool({ connectionString: setup.databaseUrl, max: UPDATE_CONNECTIONS });
    const config = writeConfig(setup.databaseUrl, setup.redisUrl, setup.prefix, 0);
    let busy: { hitRate: number; reads: number };
    let writes: { stop(): Promise<void>; applied(): number };
    try {
      await installBenchTriggers(pool, config.raw, {});
      context.note('near-cache: starting the daemon (it reloads the table)');
      const stopDaemon = await startDaemon(config.file);
      try {
        await loop(1, () => reader.get(zipf()));
        writes = startUpdates(pool, zipfSampler(users, random));
        try {
          busy = await hitRateOver(reader, UPDATE_SECONDS, zipf);
        } finally {
          await writes.stop();
        }
      } finally {
        await stopDaemon();
      }
    } finally {
      config.remove();
      await pool.end();
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
      `Near-cache hit rate and staleness (Zipf(1.0) gets; single-row UPDATEs of Zipf-chosen users committed at ${UPDATES_PER_SECOND.toLocaleString('en')}/s for ${UPDATE_SECONDS} s, applied by the daemon)`,
      ['measure', 'value', 'target'],
      [
        ['hit rate, no writes', `${(quiet.hitRate * 100).toFixed(1)}% of ${quiet.reads.toLocaleString('en')} gets`, ''],
        [`hit rate, ${UPDATES_PER_SECOND.toLocaleString('en')} updates/s`, `${(busy.hitRate * 100).toFixed(1)}% of ${busy.reads.toLocaleString('en')} gets`, ''],
        ['updates committed', `${writes!.applied().toLocaleString('en')} (${(writes!.applied() / UPDATE_SECONDS).toFixed(0)}/s)`, ''],
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

/** Commits single-row UPDATEs paced at UPDATES_PER_SECOND over a few connections (one would not keep up). */
function startUpdates(pool: pg.Pool, key: () => number): { stop(): Promise<void>; applied(): number } {
  let running = true;
  let issued = 0;
  let applied = 0;
  const started = performance.now();
  const workers = Array.from({ length: UPDATE_CONNECTIONS }, async () => {
    while (running) {
      if (issued < ((performance.now() - started) / 1000) * UPDATES_PER_SECOND) {
        const n = issued++;
        await pool.query('UPDATE users SET name = $1 WHERE user_id = $2', [`near ${n}`, key()]);
        applied++;
      } else {
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
    applied: () => applied,
  };
}
