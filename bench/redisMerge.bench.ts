/**
 * Scratch merges on a loaded table of joined rows: how long a refresh batch
 * of 1,000 records takes to stage and merge, and how long Redis is blocked
 * (the longest PING round trip of a probe connection) while an adjustment of
 * 100,000 records is merged, with the default merge batch (bounded script
 * calls behind an overlay) and with everything in one script call.
 * Targets (issue 3 brief): a 1,000-record merge in a few ms; a 100k
 * adjustment must not block Redis for seconds.

 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { Interval } from '../lib/core/interval.ts';
import { StorageRecordsSpec } from '../lib/core/storageRecordsSpec.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { BenchContext } from './benchContext.ts';
import { elapsedMs, median } from './benchTable.ts';
import { deleteKeys, joinedUserScorer, joinedUsers } from './redisLoad.bench.ts';
import type { JoinedUserRow } from './seedDatabase.ts';

const ROWS = 1_000_000;
const REFRESH_BATCH = 1_000;
const REFRESH_ROUNDS = 20;
const ADJUST_SIZE = 100_000;

/** Runs `task` while a second connection PINGs in a loop; returns the task's time and the longest PING. */
async function withBlockingProbe(url: string, task: () => Promise<void>): Promise<{ ms: number; longestPingMs: number }> {
  const probe = new Redis(url);
  await probe.ping();
  let running = true;
  let longestPingMs = 0;
  const probing = (async () => {
    while (running) {
      const started = performance.now();
      await probe.ping();
      longestPingMs = Math.max(longestPingMs, performance.now() - started);
    }
  })();
  const started = performance.now();
  await task();
  const ms = elapsedMs(started);
  running = false;
  await probing;
  await probe.quit();
  return { ms, longestPingMs };
}

function renamed(ids: Iterable<number>, round: number): JoinedUserRow[] {
  return [...ids].map((id) => ({ ...joinedUsers(1, id).next().value!, user_name: `User ${id} v${round}` }));
}

async function discard(storage: RedisStorageTable<JoinedUserRow>, spec: StorageRecordsSpec<JoinedUserRow>): Promise<number> {
  let count = 0;
  for await (const row of storage.scratchDiscardRecords(spec)) if (row) count++;
  return count;
}

export async function run(context: BenchContext): Promise<void> {
  const rows = ROWS;
  const url = context.redisUrl;
  const prefix = `tcbench:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(url);
  const rowsOut: (string | number)[][] = [];
  try {
    for (const [label, mergeBatchSize] of [['default merge batch (2,000 changes per call)', undefined], ['one script call per merge', 1_000_000_000]] as const) {
      const table = `users${mergeBatchSize ?? ''}`;
      context.note(`loading ${rows.toLocaleString('en')} rows (${label})`);
      const storage = await RedisStorageTable.open<JoinedUserRow>({ redis, table, keyPrefix: prefix, scorer: joinedUserScorer, mergeBatchSize });
      await storage.putRecords(joinedUsers(rows));
      await storage.markLoaded({ coverage: null });

      const stage: number[] = [];
      const merge: number[] = [];
      for (let round = 0; round < REFRESH_ROUNDS; round++) {
        const ids = Array.from({ length: REFRESH_BATCH }, (_, i) => 1 + ((round * 7_919 + i * 997) % rows));
        const keys = new Set(ids);
        const spec = new StorageRecordsSpec<JoinedUserRow>('primary_key', [...keys].sort((a, b) => a - b).map((id) => Interval.onlyContaining(id)), (row) => keys.has(row.user_id));
        const started = performance.now();
        await discard(storage, spec);
        await storage.scratchPutRecords(renamed(keys, round));
        const staged = performance.now();
        await storage.scratchMerge();
        stage.push(staged - started);
        merge.push(elapsedMs(staged));
      }
      rowsOut.push([`refresh of ${REFRESH_BATCH.toLocaleString('en')} scattered records, ${label}`, `${median(stage).toFixed(1)} ms`, `${median(merge).toFixed(2)} ms`, '', 'merge: a few ms']);

      const adjustSpec = new StorageRecordsSpec<JoinedUserRow>('primary_key', [new Interval(1, 1 + ADJUST_SIZE)]);
      const started = performance.now();
      await discard(storage, adjustSpec);
      await storage.scratchPutRecords(renamed(Array.from({ length: ADJUST_SIZE }, (_, i) => rows + 1 + i), 0));
      const stageMs = elapsedMs(started);
      const merged = await withBlockingProbe(url, () => storage.scratchMerge({ coverage: null }));
      rowsOut.push([
        `adjustment expiring ${ADJUST_SIZE.toLocaleString('en')} and loading ${ADJUST_SIZE.toLocaleString('en')} records, ${label}`,
        `${stageMs.toFixed(0)} ms`,
        `${merged.ms.toFixed(0)} ms`,
        `${merged.longestPingMs.toFixed(1)} ms`,
        'no multi-second block',
      ]);
      await storage.close();
    }
  } finally {
    await deleteKeys(redis, `{${prefix}*`);
    await redis.quit();
  }
  context.printTable(
    `Scratch merges on a table of ${rows.toLocaleString('en')} joined rows`,
    ['step', 'staging (discard + put), median', 'merge, median (wall)', 'longest PING meanwhile (Redis blocked)', 'target'],
    rowsOut,
  );
}
