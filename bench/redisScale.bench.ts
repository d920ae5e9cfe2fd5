/**
 * Redis at scale (issue #15), on private servers this benchmark starts and
 * removes:
 *
 * - reader throughput (reads/s of `get`, 32 concurrent readers, one
 *   connection each) on one primary, against the same readers with
 *   `readFrom: 'replica'` on a primary with 2 replicas behind Sentinel; with
 *   each Redis node's CPU per read, since on a small machine the client
 *   process, not Redis, may be what limits reads/s;
 * - the daemon's commit-to-visible latency of single-row UPDATEs with its
 *   table on one Redis against on a Redis Cluster (3 masters, 3 replicas),
 *   in the same run.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openReader, type ReadFrom, type TableReader } from '../lib/client/index.ts';
import { Interval } from '../lib/core/interval.ts';
import { TableKeys } from '../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import { PrivateRedisCluster, PrivateRedisSentinel } from '../test/support/privateRedisTopology.ts';
import { PrivateRedis } from '../test/support/privateServers.ts';
import { waitFor } from '../test/support/waitFor.ts';
import type { BenchContext } from './benchContext.ts';
import { median, percentiles } from './benchTable.ts';
import { installBenchTriggers, measureUpdates, startDaemon, writeConfig } from './daemon.bench.ts';
import { joinedUserScorer, joinedUsers } from './redisLoad.bench.ts';
import { seedJoinedUsers } from './seedDatabase.ts';

const RECORDS = 10_000;
const READERS = 32;
const SLICE_SECONDS = 2;
const SLICES = 3;
/** The daemon part: cached users and UPDATEs per second. */
const USERS = 10_000;
const UPDATE_RATE = 200;

type User = Record<string, unknown>;

/** Seconds of CPU (user + system) the Redis node on `port` has used. */
async function cpuSeconds(port: number): Promise<number> {
  const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  await node.connect();
  try {
    const info = await node.info('cpu');
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    return field('used_cpu_user') + field('used_cpu_sys');
  } finally {
    node.disconnect();
  }
}

/** Reads/s of the readers, each a loop of `get` on random keys, for `seconds`; and each node's CPU seconds meanwhile. */
async function readRound(readers: readonly TableReader<User>[], ports: readonly number[], seconds: number): Promise<{ rate: number; cpu: number[] }> {
  const cpuBefore = await Promise.all(ports.map(cpuSeconds));
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const counts = await Promise.all(
    readers.map(async (reader, index) => {
      let state = index + 1;
      let count = 0;
      while (performance.now() < deadline) {
        state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
        await reader.get(1 + (state % RECORDS));
        count++;
      }
      return count;
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpuAfter = await Promise.all(ports.map(cpuSeconds));
  return { rate: counts.reduce((a, b) => a + b, 0) / elapsed, cpu: cpuAfter.map((after, i) => (after - cpuBefore[i]!) / elapsed) };
}

async function readThroughput(context: BenchContext): Promise<void> {
  context.note('starting a primary with 2 replicas and 3 sentinels');
  const topology = await PrivateRedisSentinel.start({ replicas: 2 });
  const readerSets = new Map<ReadFrom, TableReader<User>[]>();
  try {
    const primaryPort = await topology.primaryPort();
    const keyPrefix = `tcbench:scale:${randomBytes(4).toString('hex')}:`;
    context.note(`loading ${RECORDS} records`);
    const storage = await RedisStorageTable.open({ url: `redis://127.0.0.1:${primaryPort}`, table: 'users', keyPrefix, scorer: joinedUserScorer });
    await storage.clear();
    await storage.putRecords(joinedUsers(RECORDS));
    await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
    await storage.close();
    const meta = new TableKeys('users', keyPrefix).meta;
    for (const port of topology.dataPorts) {
      await waitFor(`the table on node ${port}`, async () => {
        const node = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 });
        try {
          return (await node.exists(meta)) === 1;
        } finally {
          node.disconnect();
        }
      }, { timeoutMs: 30_000 });
    }
    const sentinel = { sentinels: topology.sentinelUrls, name: topology.name };
    for (const readFrom of ['primary', 'replica'] as const) {
      readerSets.set(readFrom, await Promise.all(Array.from({ length: READERS }, () => openReader({ sentinel, table: 'users', keyPrefix, readFrom, timeoutMs: 10_000 }))));
    }
    const ports = topology.dataPorts;
    const rounds = new Map<ReadFrom, { rate: number; cpu: number[] }[]>([['primary', []], ['replica', []]]);
    for (const readers of readerSets.values()) await readRound(readers, ports, 0.5);
    for (let slice = 0; slice < SLICES; slice++) {
      for (const [readFrom, readers] of readerSets) {
        context.note(`slice ${slice + 1}/${SLICES}: ${READERS} readers, readFrom ${readFrom}`);
        rounds.get(readFrom)!.push(await readRound(readers, ports, SLICE_SECONDS));
      }
    }
    const row = (readFrom: ReadFrom, label: string) => {
      const measured = rounds.get(readFrom)!;
      const rate = median(measured.map(({ rate }) => rate));
      const cpu = ports.map((_, i) => median(measured.map((round) => round.cpu[i]!)));
      const busiest = Math.max(...cpu);
      return [
        label,
        rate,
        rate / median(rounds.get('primary')!.map((round) => round.rate)),
        ports.map((port, i) => `${port === primaryPort ? 'P' : 'R'} ${Math.round(cpu[i]! * 100)}%`).join(', '),
        (busiest * 1_000_000) / rate,
      ];
    };
    context.printTable(
      `Reader throughput: \`get\` of random keys of ${RECORDS.toLocaleString('en-US')} records, ${READERS} concurrent readers (one connection each, one Node process), medians of ${SLICES} interleaved slices of ${SLICE_SECONDS} s; 2-core machine shared by the readers and every Redis node`,
      ['readers', 'reads/s', 'ratio', 'Redis CPU per node (P primary, R replica; % of one core)', 'busiest node: CPU µs per read (all reads)'],
      [row('primary', 'baseline: one primary (readFrom primary)'), row('replica', "primary + 2 replicas, readFrom 'replica'")],
    );
  } finally {
    for (const readers of readerSets.values()) await Promise.all(readers.map((reader) => reader.close()));
    await topology.stop();
  }
}


async function daemonLatency(context: BenchContext): Promise<void> {
  await using db = await context.createDatabase('redis_scale');
  context.note(`seeding ${USERS} users`);
  await seedJoinedUsers(db.url, { users: USERS, cities: 100 });
  const pool = new pg.Pool({ connectionString: db.url, max: 10 });
  pool.on('error', () => {});
  context.note('starting one Redis and a Redis Cluster (3 masters, 3 replicas)');
  const [single, cluster] = await Promise.all([PrivateRedis.start(), PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 1 })]);
  const keyPrefix = `tcbench:scale:${randomBytes(4).toString('hex')}:`;
  const base = writeConfig(db.url, single.url, keyPrefix, 0);
  const rows: (string | number)[][] = [];
  try {
    await installBenchTriggers(pool, base.raw, {});
    const targets = [
      { label: 'baseline: one Redis', redis: { url: single.url, keyPrefix }, reader: { url: single.url } },
      { label: 'Redis Cluster, 3 masters + 3 replicas', redis: { cluster: { nodes: cluster.nodeUrls }, keyPrefix }, reader: { cluster: { nodes: cluster.nodeUrls } } },
    ];
    const results = new Map<string, number[]>();
    for (const target of targets) {
      writeFileSync(base.file, JSON.stringify({ ...base.raw, redis: target.redis }));
      context.note(`${target.label}: daemon loading ${USERS} users, then ${UPDATE_RATE} UPDATEs/s`);
      const daemon = await startDaemon(base.file);
      const reader = await openReader<User>({ ...target.reader, table: 'users', keyPrefix, timeoutMs: 10_000 });
      try {
        const result = await measureUpdates(pool, reader, UPDATE_RATE, `scale ${target.label}`, USERS);
        results.set(target.label, result.latencies);
      } finally {
        await reader.close();
        await daemon.stop();
      }
    }
    const baseline = percentiles(results.get(targets[0]!.label)!, [50])[50]!;
    for (const target of targets) {
      const latencies = results.get(target.label)!;
      const p = percentiles(latencies, [50, 95, 99]);
      rows.push([target.label, latencies.length, p[50]!, p[95]!, p[99]!, p[50]! / baseline]);
    }
    context.printTable(
      `Daemon commit-to-visible latency (ms) of single-row UPDATEs at ${UPDATE_RATE}/s, ${USERS.toLocaleString('en-US')} cached users, daemon in a child process, same run`,
      ['Redis', 'updates', 'p50', 'p95', 'p99', 'p50 ratio'],
      rows,
    );
  } finally {
    base.remove();
    await pool.end();
    await Promise.all([single.stop(), cluster.stop()]);
  }
}

export async function run(context: BenchContext): Promise<void> {
  await readThroughput(context);
  await daemonLatency(context);
}
