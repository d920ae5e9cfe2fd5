/**
 * Reads through the thin client against the alternatives, in one run, on the
 * seed example's join with 100,000 users (1,000 cities):
 * - `get` vs raw ioredis HGET + decode (target: at most 1.15x the time);
 * - a 100-record `range` vs raw ZRANGEBYSCORE then HMGET + decode (target:
 *   at most 0.6x, one round trip instead of two);
 * - the same reads from Postgres running the join (ratio reported);
 * - reads/s with 1, 8 and 32 concurrent readers (one connection each).
 * Times are per read, sequential (one read in flight per reader). A row with
 * a function that only does HGET shows the floor of any single-call atomic
 * read, and a 10-record range shows the round trip the reader saves when
 * per-record work does not dominate.
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
import { deleteKeys, joinedUserScorer } from './redisLoad.bench.ts';
import { JOINED_USERS_QUERY, JOINED_USERS_RANGE_QUERY, seedJoinedUsers, type JoinedUserRow } from './seedDatabase.ts';

const USERS = 100_000;
const CITIES = 1_000;
const RANGE = 100;
const SMALL_RANGE = 10;
/** A function that only reads one hash field: the cheapest possible single-call read, to show what any script-based read costs. */
const FLOOR_LIBRARY = `#!lua name=tablecache_bench_floor
redis.register_function{function_name='tablecache_bench_floor_hget', callback=function(keys, args) return redis.call('HGET', keys[1], args[1]) end, flags={'no-writes'}}`;
const CONCURRENCY = [1, 8, 32];
const SECONDS_PER_ROUND = 1;
const ROUNDS = 3;
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

/** Best reads/s of each contender over alternating rounds, after a warm-up. */
async function compare(contenders: Record<string, Read>, seconds: number, rounds: number): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (const [name, read] of Object.entries(contenders)) {
    await readsPerSecond(read, Math.min(0.3, seconds));
    best[name] = 0;
  }
  for (let round = 0; round < rounds; round++) {
    for (const [name, read] of Object.entries(contenders)) best[name] = Math.max(best[name]!, await readsPerSecond(read, seconds));
  }
  return best;
}

const perRead = (readsPerSecond: number) => `${(1_000_000 / readsPerSecond).toFixed(1)} µs`;

export async function run(context: BenchContext): Promise<void> {
  const { redisUrl } = context;
  const seconds = SECONDS_PER_ROUND;
  const rounds = ROUNDS;
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
    const rangeStart = (random: () => number) => 1 + Math.floor(random() * (USERS - RANGE));

    await raw.call('FUNCTION', 'LOAD', 'REPLACE', FLOOR_LIBRARY);
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
      seconds,
      rounds,
    );
    const ranges = await compare(
      {
        raw: async (random) => {
          const start = rangeStart(random);
          const fields = await raw.zrangebyscore(indexKey, start, `(${start + RANGE}`);
          const values = await raw.hmgetBuffer(recordsKey, ...fields);
          return values.map((bytes) => bytes && codec.decode(bytes));
        },
        reader: (random) => {
          const start = rangeStart(random);
          return reader.range('primary_key', start, start + RANGE);
        },
        postgres: (random) => {
          const start = rangeStart(random);
          return client.query({ name: 'range', text: JOINED_USERS_RANGE_QUERY, values: [start, start + RANGE] });
        },
      },
      seconds,
      rounds,
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
      seconds,
      rounds,
    );
    await raw.call('FUNCTION', 'DELETE', 'tablecache_bench_floor');
    client.release();
    raw.disconnect();

    const getRatio = gets.raw! / gets.reader!;
    const rangeRatio = ranges.raw! / ranges.reader!;
    const smallRangeRatio = smallRanges.raw! / smallRanges.reader!;
    context.printTable(
      `Reads of one table of ${USERS.toLocaleString('en')} joined users, one read at a time (best of ${rounds} rounds of ${seconds} s)`,
      ['read', 'raw ioredis (baseline)', 'reader', 'reader time / raw time', 'target', 'Postgres join', 'reader time / Postgres time'],
      [
        [
          'get one record by primary key',
          `${Math.round(gets.raw!)}/s (${perRead(gets.raw!)})`,
          `${Math.round(gets.reader!)}/s (${perRead(gets.reader!)})`,
          getRatio.toFixed(2),
          `<= 1.15 ${getRatio <= 1.15 ? 'met' : 'MISSED'}`,
          `${Math.round(gets.postgres!)}/s (${perRead(gets.postgres!)})`,
          (gets.postgres! / gets.reader!).toFixed(2),
        ],
        [
          'floor: FCALL_RO of a function doing only HGET (+ decode)',
          '',
          `${Math.round(gets.floor!)}/s (${perRead(gets.floor!)})`,
          (gets.raw! / gets.floor!).toFixed(2),
          'what any one-call script read costs',
          '',
          '',
        ],
        [
          `range of ${RANGE} records`,
          `${Math.round(ranges.raw!)}/s (${perRead(ranges.raw!)})`,
          `${Math.round(ranges.reader!)}/s (${perRead(ranges.reader!)})`,
          rangeRatio.toFixed(2),
          `<= 0.6 ${rangeRatio <= 0.6 ? 'met' : 'MISSED'}`,
          `${Math.round(ranges.postgres!)}/s (${perRead(ranges.postgres!)})`,
          (ranges.postgres! / ranges.reader!).toFixed(2),
        ],
        [
          `range of ${SMALL_RANGE} records`,
          `${Math.round(smallRanges.raw!)}/s (${perRead(smallRanges.raw!)})`,
          `${Math.round(smallRanges.reader!)}/s (${perRead(smallRanges.reader!)})`,
          smallRangeRatio.toFixed(2),
          '(shows the round trip saved)',
          `${Math.round(smallRanges.postgres!)}/s (${perRead(smallRanges.postgres!)})`,
          (smallRanges.postgres! / smallRanges.reader!).toFixed(2),
        ],
      ],
    );

    const concurrencyRows: (string | number)[][] = [];
    for (const count of CONCURRENCY) {
      while (readers.length < count) readers.push(await openReader<JoinedUserRow>({ url: redisUrl, table: 'users', keyPrefix: prefix }));
      const active = readers.slice(0, count);
      const getRate = await readsPerSecond((random) => active[Math.floor(random() * count)]!.get(userId(random)), seconds, count);
      const rangeRate = await readsPerSecond((random) => {
        const start = rangeStart(random);
        return active[Math.floor(random() * count)]!.range('primary_key', start, start + RANGE);
      }, seconds, count);
      concurrencyRows.push([count, Math.round(getRate), Math.round(rangeRate)]);
    }
    context.printTable(
      'Reads/s with concurrent readers (one connection each, in one Node process, sharing 2 cores with Redis)',
      ['concurrent readers', 'get reads/s', `range (${RANGE} records) reads/s`],
      concurrencyRows,
    );
    await writer.close();
  } finally {
    for (const reader of readers) await reader.close();
    await deleteKeys(redis, `{${prefix}*`);
    await redis.quit();
    await pool.end();
  }
}
