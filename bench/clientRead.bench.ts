/**
 * Reads through the thin client against the alternatives, in one run, on the
 * seed example's join with 100,000 users (1,000 cities):
 * - `get` vs raw ioredis HGET + decode (target: at most 1.15x the time);
 * - a 100-record `range` vs raw ZRANGEBYSCORE then HMGET + decode (target:
 *   at most 0.6x, one round trip instead of two);
 * - the same reads from Postgres running the join (ratio reported);
 * - reads/s with 1, 8 and 32 concurrent readers (one connection each).
 * Times are per read, sequential (one read in flight per reader). Rows with
 * functions that only do HGET, or only ZRANGEBYSCORE then HMGET, show the
 * floor of any single-call script read (no generation lookup, no checks); a
 * row decoding 100 records without Redis shows the share of a range both
 * sides pay alike; a 10-record range shows the round trip the reader saves
 * when per-record work does not dominate.
 * Then the near-cache rows (bench/clientReadNearCache.ts) on the same data.
 * `TABLECACHE_BENCH_NEAR_CACHE_ONLY=1` runs only those (a quick check).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openReader, type TableReader } from '../lib/client/index.ts';
import { Interval } from '../lib/core/interval.ts';
import { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import { TableKeys } from '../lib/redis/keyLayout.ts';
import type { BenchContext } from './benchContext.ts';
import { median } from './benchTable.ts';
import { runNearCacheRows } from './clientReadNearCache.ts';
import { deleteKeys, joinedUserScorer } from './redisLoad.bench.ts';
import { JOINED_USERS_QUERY, JOINED_USERS_RANGE_QUERY, seedJoinedUsers, type JoinedUserRow } from './seedDatabase.ts';

const USERS = 100_000;
const CITIES = 1_000;
const RANGE = 100;
const SMALL_RANGE = 10;
/**
 * Functions that only read, with no generation lookup and no checks: the
 * cheapest possible single-call reads, to show what any script-based read costs.
 */
const FLOOR_LIBRARY = `#!lua name=tablecache_bench_floor
redis.register_function{function_name='tablecache_bench_floor_hget', callback=function(keys, args) return redis.call('HGET', keys[1], args[1]) end, flags={'no-writes'}}
redis.register_function{function_name='tablecache_bench_floor_range', flags={'no-writes'}, callback=function(keys, args)
  local fields = redis.call('ZRANGEBYSCORE', keys[1], args[1], '(' .. args[2])
  if #fields == 0 then return {} end
  return redis.call('HMGET', keys[2], unpack(fields))
end}`;
const CONCURRENCY = [1, 8, 32];
/** Slices per contender, and their length: short slices taken in turn, so every contender sees the same load of the shared machine. */
const SLICES = 20;
const SECONDS_PER_SLICE = 0.2;
/** Slices per contender of each concurrency measurement. */
const CONCURRENCY_SLICES = 5;
const GET_QUERY = `${JOINED_USERS_QUERY}\n  WHERE user_id = $1`;

/** A deterministic sequence, so every run reads the same keys. */
function pseudoRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

type Read = (random: () => number) => Promise<unknown>;

/** Reads/s of `workers` loops each running `read` one at a time for `seconds`. */
async function readsPerSecond(read: Read, seconds: number, workers = 1): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      const random = pseudoRandom(worker + 1);
      let count = 0;
      while (performance.now() < deadline) {
        await read(random);
        count++;
      }
      return count;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
}

/** Reads/s of contenders measured in interleaved slices. */
interface Comparison {
  /** The median reads/s of one contender. */
  rate(name: string): number;
  /**
   * How long a read of `name` takes relative to one of `baseline`: the
   * median over slices of their ratio, each from two slices run back to back.
   */
  timeRatio(name: string, baseline: string): number;
}

/**
 * Measures each contender (as `workers` loops) in interleaved slices, after a
 * warm-up: each round runs every contender for one short slice, so a burst
 * of load from elsewhere on the shared machine hits all of them alike, and
 * medians drop the rounds it hit hardest.
 */
async function compare(contenders: Record<string, Read>, sliceSeconds: number, slices: number, workers = 1): Promise<Comparison> {
  const rates: Record<string, number[]> = {};
  for (const [name, read] of Object.entries(contenders)) {
    await readsPerSecond(read, 0.3, workers);
    rates[name] = [];
  }
  for (let slice = 0; slice < slices; slice++) {
    for (const [name, read] of Object.entries(contenders)) rates[name]!.push(await readsPerSecond(read, sliceSeconds, workers));
  }
  return {
    rate: (name) => median(rates[name]!),
    timeRatio: (name, baseline) => median(rates[name]!.map((rate, slice) => rates[baseline]![slice]! / rate)),
  };
}

const perRead = (readsPerSecond: number) => `${(1_000_000 / readsPerSecond).toFixed(1)} µs`;

export async function run(context: BenchContext): Promise<void> {
  const { redisUrl } = context;
  const prefix = `tcbench:${randomBytes(4).toString('hex')}:`;
  await using database = await context.createDatabase('client_read');
  context.note(`seeding ${USERS.toLocaleString('en')} users`);
  await seedJoinedUsers(database.url, { users: USERS, cities: CITIES });
  const pool = new pg.Pool({ connectionString: database.url, max: 1 });
  const redis = new Redis(redisUrl);
  const readers: TableReader<JoinedUserRow>[] = [];
  try {
    const writer = await RedisStorageTable.open<JoinedUserRow>({ redis, table: 'users', keyPrefix: prefix, scorer: joinedUserScorer });
    await writer.clear();
    await writer.putRecords((await pool.query<JoinedUserRow>(JOINED_USERS_QUERY)).rows);
    await writer.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
    const reader = await openReader<JoinedUserRow>({ url: redisUrl, table: 'users', keyPrefix: prefix });
    readers.push(reader);

    const keys = new TableKeys('users', prefix);
    const generation = (await reader.info()).generation!;
    const recordsKey = keys.records(generation);
    const indexKey = keys.index(generation, 'primary_key');
    const codec = new MessagePackRecordCodec<JoinedUserRow>();
    const raw = new Redis(redisUrl);
    const client = await pool.connect();
    const userId = (random: () => number) => 1 + Math.floor(random() * USERS);
    const nearCacheSetup = () => ({
      redisUrl,
      prefix,
      users: USERS,
      raw,
      recordsKey,
      codec,
      writer,
      databaseUrl: database.url,
      random: pseudoRandom(7),
    });
    const rangeStart = (random: () => number) => 1 + Math.floor(random() * (USERS - RANGE));

    if (process.env.TABLECACHE_BENCH_NEAR_CACHE_ONLY === '1') {
      await runNearCacheRows(context, nearCacheSetup());
      client.release();
      raw.disconnect();
      return;
    }
    await raw.call('FUNCTION', 'LOAD', 'REPLACE', FLOOR_LIBRARY);
    const sampleRange = await raw.hmgetBuffer(recordsKey, ...(await raw.zrangebyscore(indexKey, 1, `(${1 + RANGE}`)));
    const gets = await compare(
      {
        raw: async (random) => {
          const bytes = await raw.hgetBuffer(recordsKey, String(userId(random)));
          return bytes && codec.decode(bytes);
        },
        floor: async (random) => {
          const bytes = (await raw.callBuffer('FCALL_RO', 'tablecache_bench_floor_hget', 1, recordsKey, String(userId(random)))) as Buffer | null;
          return bytes && codec.decode(bytes);
        },
        reader: (random) => reader.get(userId(random)),
        postgres: (random) => client.query({ name: 'get', text: GET_QUERY, values: [userId(random)] }),
      },
      SECONDS_PER_SLICE,
      SLICES,
    );
    const ranges = await compare(
      {
        raw: async (random) => {
          const start = rangeStart(random);
          const fields = await raw.zrangebyscore(indexKey, start, `(${start + RANGE}`);
          const values = await raw.hmgetBuffer(recordsKey, ...fields);
          return values.map((bytes) => bytes && codec.decode(bytes));
        },
        floor: async (random) => {
          const start = rangeStart(random);
          const values = (await raw.callBuffer('FCALL_RO', 'tablecache_bench_floor_range', 2, indexKey, recordsKey, start, start + RANGE)) as Buffer[];
          return values.map((bytes) => codec.decode(bytes));
        },
        decodeOnly: async () => sampleRange.map((bytes) => bytes && codec.decode(bytes)),
        reader: (random) => {
          const start = rangeStart(random);
          return reader.range('primary_key', start, start + RANGE);
        },
        postgres: (random) => {
          const start = rangeStart(random);
          return client.query({ name: 'range', text: JOINED_USERS_RANGE_QUERY, values: [start, start + RANGE] });
        },
      },
      SECONDS_PER_SLICE,
      SLICES,
    );
    const smallRanges = await compare(
      {
        raw: async (random) => {
          const start = rangeStart(random);
          const fields = await raw.zrangebyscore(indexKey, start, `(${start + SMALL_RANGE}`);
          const values = await raw.hmgetBuffer(recordsKey, ...fields);
          return values.map((bytes) => bytes && codec.decode(bytes));
        },
        reader: (random) => {
          const start = rangeStart(random);
          return reader.range('primary_key', start, start + SMALL_RANGE);
        },
        postgres: (random) => {
          const start = rangeStart(random);
          return client.query({ name: 'range', text: JOINED_USERS_RANGE_QUERY, values: [start, start + SMALL_RANGE] });
        },
      },
      SECONDS_PER_SLICE,
      SLICES,
    );
    await raw.call('FUNCTION', 'DELETE', 'tablecache_bench_floor');

    const getRatio = gets.timeRatio('reader', 'raw');
    const rangeRatio = ranges.timeRatio('reader', 'raw');
    const smallRangeRatio = smallRanges.timeRatio('reader', 'raw');
    context.printTable(
      `Reads of one table of ${USERS.toLocaleString('en')} joined users, one read at a time (medians of ${SLICES} interleaved slices of ${SECONDS_PER_SLICE} s; a ratio is the median of the ratios of slices run back to back)`,
      ['read', 'raw ioredis (baseline)', 'reader', 'reader time / raw time', 'target', 'Postgres join', 'reader time / Postgres time'],
      [
        [
          'get one record by primary key',
          `${Math.round(gets.rate('raw'))}/s (${perRead(gets.rate('raw'))})`,
          `${Math.round(gets.rate('reader'))}/s (${perRead(gets.rate('reader'))})`,
          getRatio.toFixed(2),
          `<= 1.15 ${getRatio <= 1.15 ? 'met' : 'MISSED'}`,
          `${Math.round(gets.rate('postgres'))}/s (${perRead(gets.rate('postgres'))})`,
          gets.timeRatio('reader', 'postgres').toFixed(2),
        ],
        [
          'floor: FCALL_RO of a function doing only HGET (+ decode)',
          '',
          `${Math.round(gets.rate('floor'))}/s (${perRead(gets.rate('floor'))})`,
          gets.timeRatio('floor', 'raw').toFixed(2),
          'what any one-call script read costs',
          '',
          '',
        ],
        [
          `range of ${RANGE} records`,
          `${Math.round(ranges.rate('raw'))}/s (${perRead(ranges.rate('raw'))})`,
          `${Math.round(ranges.rate('reader'))}/s (${perRead(ranges.rate('reader'))})`,
          rangeRatio.toFixed(2),
          `<= 0.6 ${rangeRatio <= 0.6 ? 'met' : 'MISSED'}`,
          `${Math.round(ranges.rate('postgres'))}/s (${perRead(ranges.rate('postgres'))})`,
          ranges.timeRatio('reader', 'postgres').toFixed(2),
        ],
        [
          `floor: FCALL_RO of a function doing only ZRANGEBYSCORE then HMGET (+ decode), ${RANGE} records`,
          '',
          `${Math.round(ranges.rate('floor'))}/s (${perRead(ranges.rate('floor'))})`,
          ranges.timeRatio('floor', 'raw').toFixed(2),
          'what any one-call script range costs',
          '',
          '',
        ],
        [
          `decoding ${RANGE} records alone (no Redis; both sides pay it)`,
          '',
          `${Math.round(ranges.rate('decodeOnly'))}/s (${perRead(ranges.rate('decodeOnly'))})`,
          ranges.timeRatio('decodeOnly', 'raw').toFixed(2),
          '',
          '',
          '',
        ],
        [
          `range of ${SMALL_RANGE} records`,
          `${Math.round(smallRanges.rate('raw'))}/s (${perRead(smallRanges.rate('raw'))})`,
          `${Math.round(smallRanges.rate('reader'))}/s (${perRead(smallRanges.rate('reader'))})`,
          smallRangeRatio.toFixed(2),
          '(shows the round trip saved)',
          `${Math.round(smallRanges.rate('postgres'))}/s (${perRead(smallRanges.rate('postgres'))})`,
          smallRanges.timeRatio('reader', 'postgres').toFixed(2),
        ],
      ],
    );

    const concurrencyRows: (string | number)[][] = [];
    for (const count of CONCURRENCY) {
      while (readers.length < count) readers.push(await openReader<JoinedUserRow>({ url: redisUrl, table: 'users', keyPrefix: prefix }));
      const active = readers.slice(0, count);
      const rates = await compare(
        {
          get: (random) => active[Math.floor(random() * count)]!.get(userId(random)),
          range: (random) => {
            const start = rangeStart(random);
            return active[Math.floor(random() * count)]!.range('primary_key', start, start + RANGE);
          },
        },
        SECONDS_PER_SLICE,
        CONCURRENCY_SLICES,
        count,
      );
      concurrencyRows.push([count, Math.round(rates.rate('get')), Math.round(rates.rate('range'))]);
    }
    context.printTable(
      `Reads/s with concurrent readers (one connection each, in one Node process, sharing 2 cores with Redis; medians of ${CONCURRENCY_SLICES} interleaved slices of ${SECONDS_PER_SLICE} s)`,
      ['concurrent readers', 'get reads/s', `range (${RANGE} records) reads/s`],
      concurrencyRows,
    );
    // Last: it closes the writer and hands the table to a daemon.
    await runNearCacheRows(context, nearCacheSetup());
    client.release();
    raw.disconnect();
  } finally {
    for (const reader of readers) await reader.close();
    await deleteKeys(redis, `{${prefix}*`);
    await redis.quit();
    await pool.end();
  }
}
