/**
 * Loading 1,000,000 rows shaped like the seed join (users ⋈ users_cities ⋈
 * cities) into Redis: RedisStorageTable (clear, putRecords from a stream,
 * markLoaded) against the plain baseline, a pipelined HSET + ZADD per row of
 * the same encoded rows, in the same run, alternating. Target (issue 3): at
 * least 0.75 of the baseline's rows/s, in bounded memory.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { RecordScorer } from '../lib/core/storageTable.ts';
import { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { BenchContext } from './benchContext.ts';
import { elapsedMs, mebibytes, opsPerSecond, sampleRss } from './benchTable.ts';
import type { JoinedUserRow } from './seedDatabase.ts';

const ROWS = 1_000_000;
const ROUNDS = 2;
const CITIES = 1_000;

/** Scores seed-join rows in the one index of PrimaryKeyIndexes, as the seed example caches them. */
export const joinedUserScorer: RecordScorer<JoinedUserRow, number> = {
  indexNames: ['primary_key'],
  score: (_, row) => row.user_id,
  primaryKey: (row) => row.user_id,
};

/** Rows as the seed join returns them (bench/seedDatabase.ts's data), generated one by one, never one big array. */
export function* joinedUsers(count: number, firstId = 1): Generator<JoinedUserRow> {
  for (let id = firstId; id < firstId + count; id++) {
    const city = 1 + (id % CITIES);
    yield { user_id: id, city_id: city, user_name: `User ${id}`, user_nickname: id % 2 === 0 ? `u${id}` : null, city_name: `City ${city}` };
  }
}

/** Deletes every key matching `pattern` (SCAN, never KEYS). */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** The baseline: one HSET and one ZADD per row, 1,000 rows per pipeline, 4 pipelines in flight (as the writer keeps 4 batches). */
async function plainPipelineLoad(redis: Redis, keyBase: string, rows: number): Promise<void> {
  const codec = new MessagePackRecordCodec<JoinedUserRow>();
  const inFlight: Promise<unknown>[] = [];
  let pipeline = redis.pipeline();
  let queued = 0;
  for (const row of joinedUsers(rows)) {
    const field = String(row.user_id);
    pipeline.hset(`${keyBase}:r`, field, codec.encode(row));
    pipeline.zadd(`${keyBase}:i`, row.user_id, field);
    if (++queued === 1_000) {
      inFlight.push(pipeline.exec());
      pipeline = redis.pipeline();
      queued = 0;
      if (inFlight.length >= 4) await inFlight.shift();
    }
  }
  if (queued > 0) inFlight.push(pipeline.exec());
  await Promise.all(inFlight);
}

/** Runs `task`, returning how long it took and the peak RSS of the process meanwhile. */
async function measured(task: () => Promise<void>): Promise<{ ms: number; peakBytes: number }> {
  const rss = sampleRss(20);
  const started = performance.now();
  await task();
  const ms = elapsedMs(started);
  return { ms, peakBytes: rss.stop().peakBytes };
}

export async function run(context: BenchContext): Promise<void> {
  const prefix = `tcbench:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(context.redisUrl);
  const results: { name: string; ms: number; peakBytes: number }[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      context.note(`round ${round + 1}: plain pipeline`);
      results.push({ name: 'plain', ...(await measured(() => plainPipelineLoad(redis, `{${prefix}plain}`, ROWS))) });
      await deleteKeys(redis, `{${prefix}plain}*`);

      context.note(`round ${round + 1}: RedisStorageTable`);
      const storage = await RedisStorageTable.open<JoinedUserRow>({ redis, table: 'users', keyPrefix: prefix, scorer: joinedUserScorer });
      results.push({
        name: 'ours',
        ...(await measured(async () => {
          await storage.clear();
          await storage.putRecords(joinedUsers(ROWS));
          await storage.markLoaded({ coverage: null });
        })),
      });
      await storage.close();
      const stored = await redis.hlen(`{${prefix}users}:g${await redis.hget(`{${prefix}users}:meta`, 'gen')}:r`);
      if (stored !== ROWS) throw new Error(`the load stored ${stored} rows, not ${ROWS}`);
    }
  } finally {
    await deleteKeys(redis, `{${prefix}*`);
    await redis.quit();
  }
  const best = (name: string) => results.filter((r) => r.name === name).reduce((a, b) => (a.ms <= b.ms ? a : b));
  const plain = best('plain');
  const ours = best('ours');
  const ratio = plain.ms / ours.ms;
  context.printTable(
    `Loading ${ROWS.toLocaleString('en')} joined rows into Redis (best of ${ROUNDS} alternating rounds)`,
    ['method', 'rows/s', 'seconds', 'peak RSS of the process (MiB)', 'ratio to plain', 'target'],
    [
      ['plain pipelined HSET+ZADD per row (baseline)', opsPerSecond(ROWS, plain.ms), plain.ms / 1000, mebibytes(plain.peakBytes), 1, ''],
      [
        'RedisStorageTable clear + putRecords + markLoaded',
        opsPerSecond(ROWS, ours.ms),
        ours.ms / 1000,
        mebibytes(ours.peakBytes),
        ratio,
        `>= 0.75: ${ratio >= 0.75 ? 'met' : 'MISSED'}`,
      ],
    ],
  );
}
