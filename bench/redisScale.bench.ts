/**
 * Redis at scale (issue #15), on private servers this benchmark starts and
 * removes:
 *
 * - reader throughput: 32 concurrent readers (one connection each) spread
 *   over reader processes (bench/redisScaleReaders.ts), each read a `range`
 *   of a page of records, on one primary against the same readers with
 *   `readFrom: 'replica'` on a primary with 2 replicas behind Sentinel (and
 *   on one of the replicas alone, as busy as the baseline's primary); every
 *   data server runs on the same fixed CPU budget (bench/cpuBudget.ts), so
 *   that a server, not the machine's few shared cores, limits the baseline;
 *   with each server's CPU (from /proc) against its budget and the reads it
 *   served;
 * - the daemon's commit-to-visible latency of single-row UPDATEs with its
 *   table on one Redis against on a Redis Cluster (3 masters, 3 replicas),
 *   in the same run.
 *
 * Environment (all optional): TABLECACHE_BENCH_PARTS (`reads,daemon`),
 * TABLECACHE_BENCH_READER_PROCESSES (4), TABLECACHE_BENCH_PAGE_SIZE (100),
 * TABLECACHE_BENCH_SLICES (3), TABLECACHE_BENCH_SLICE_SECONDS (2.5),
 * TABLECACHE_BENCH_REDIS_CPU (0.2: each data server's budget in cores;
 * `none` for no budget, where servers and readers have cores of their own).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openReader, type ReadFrom } from '../lib/client/index.ts';
import { Interval } from '../lib/core/interval.ts';
import { TableKeys } from '../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import { PrivateRedisCluster, PrivateRedisSentinel } from '../test/support/privateRedisTopology.ts';
import { PrivateRedis } from '../test/support/privateServers.ts';
import { waitFor } from '../test/support/waitFor.ts';
import type { BenchContext } from './benchContext.ts';
import { median, percentiles } from './benchTable.ts';
import { installBenchTriggers, measureUpdates, startDaemon, writeConfig } from './daemon.bench.ts';
import { CpuBudgetGroups, CpuBudgetUnavailableError } from './cpuBudget.ts';
import { RedisNodeUsage, type NodeSample } from './redisNodeUsage.ts';
import type { ReaderProcessOptions, ReadSlice, SliceResult } from './redisScaleReaders.ts';
import { joinedUserScorer, joinedUsers } from './redisLoad.bench.ts';
import { seedJoinedUsers } from './seedDatabase.ts';

const environmentNumber = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RECORDS = 10_000;
const READERS = 32;
const READER_PROCESSES = environmentNumber('TABLECACHE_BENCH_READER_PROCESSES', 4);
const PAGE_SIZE = environmentNumber('TABLECACHE_BENCH_PAGE_SIZE', 100);
const SLICES = environmentNumber('TABLECACHE_BENCH_SLICES', 3);
const SLICE_SECONDS = environmentNumber('TABLECACHE_BENCH_SLICE_SECONDS', 2.5);
/**
 * Each data server's CPU budget in cores, or null for none. 0.2: on 2 shared
 * cores the one-primary baseline is then bound by its server, while 3 busy
 * servers (0.6 core) leave the readers enough to keep them busy.
 */
const REDIS_CPU = redisCpuBudget(process.env.TABLECACHE_BENCH_REDIS_CPU ?? '0.2');
/** Time for a slice's start message to reach every reader process before the slice begins. */
const SLICE_LEAD_MS = 300;
/** A node that served less than this share of a slice's reads is not counted as serving reads. */
const SERVING_SHARE = 0.01;
const READERS_MAIN = fileURLToPath(new URL('redisScaleReaders.ts', import.meta.url));
/** The daemon part: cached users and UPDATEs per second. */
const USERS = 10_000;
const UPDATE_RATE = 200;

type User = Record<string, unknown>;

function redisCpuBudget(setting: string): number | null {
  if (setting === 'none') return null;
  const cores = Number(setting);
  if (!(cores > 0)) throw new Error(`TABLECACHE_BENCH_REDIS_CPU must be a number of cores above 0 (e.g. 0.2) or "none", got "${setting}".`);
  return cores;
}

/** What limits each data server's CPU in the read part: a budget, or nothing (and why). */
type ServerBudget = { readonly cores: number; readonly version: string } | { readonly uncappedBecause: string };

/** Puts every data server on its budget, or says why they run without one. */
function applyServerBudget(context: BenchContext, pids: readonly number[]): { budget: ServerBudget; groups?: CpuBudgetGroups } {
  if (REDIS_CPU === null) return { budget: { uncappedBecause: 'TABLECACHE_BENCH_REDIS_CPU=none' } };
  try {
    const groups = CpuBudgetGroups.apply(pids, REDIS_CPU);
    context.note(`each data server capped at ${REDIS_CPU} of a core (${groups.version})`);
    return { budget: { cores: REDIS_CPU, version: groups.version }, groups };
  } catch (error) {
    if (!(error instanceof CpuBudgetUnavailableError)) throw error;
    context.note(`${error.message} Running without a budget: the table cannot show what replicas add on a machine of few shared cores.`);
    return { budget: { uncappedBecause: `no CPU budget: ${error.reason}` } };
  }
}

/**
 * The read setups, measured in interleaved slices. The third reads one
 * replica with as many readers as the baseline gives the primary: a check
 * that a replica serves a read at the primary's CPU cost when it is as busy.
 */
const SETUPS = [
  { id: 'primary', label: 'baseline: one primary (readFrom primary)' },
  { id: 'replicas', label: "primary + 2 replicas, readFrom 'replica'" },
  { id: 'oneReplica', label: "one replica alone (its URL, readFrom 'replica')" },
] as const;
type SetupId = (typeof SETUPS)[number]['id'];

/** A reader process (bench/redisScaleReaders.ts) that has opened its readers. */
interface ReaderProcess {
  read(slice: ReadSlice): Promise<SliceResult>;
  stop(): Promise<void>;
}

async function startReaderProcess(options: ReaderProcessOptions): Promise<ReaderProcess> {
  const child = fork(READERS_MAIN, [JSON.stringify(options)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`reader process exited with ${code}`))));
  exited.catch(() => {});
  const nextMessage = <T>() => Promise.race([new Promise<T>((resolve) => child.once('message', (message) => resolve(message as T))), exited]);
  await nextMessage<{ ready: true }>();
  return {
    async read(slice) {
      const reply = nextMessage<SliceResult>();
      child.send(slice);
      return reply;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.send({ stop: true });
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      child.kill();
    },
  };
}

/** One slice of one setup: the readers' reads and CPU, each Redis node's CPU and the reads it served. */
interface SliceMeasurement {
  readonly rate: number;
  readonly clientCores: number;
  readonly nodes: readonly { readonly util: number; readonly served: number; readonly readsPerCpuSecond: number | null }[];
}

const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** Every process of one setup reads for the same wall-clock window, while the nodes are sampled at its edges. */
async function readSlice(processes: readonly ReaderProcess[], usage: RedisNodeUsage, seconds: number): Promise<SliceMeasurement> {
  const startAt = Date.now() + SLICE_LEAD_MS;
  const endAt = startAt + seconds * 1000;
  const results = Promise.all(processes.map((process) => process.read({ startAt, endAt })));
  await sleepUntil(startAt);
  const before = await usage.sample();
  await sleepUntil(endAt);
  const after = await usage.sample();
  const done = await results;
  const reads = done.reduce((sum, result) => sum + result.reads, 0);
  const node = (was: NodeSample, now: NodeSample) => {
    const cpu = now.cpuSeconds - was.cpuSeconds;
    const calls = now.readCalls - was.readCalls;
    return { util: cpu / seconds, served: calls / seconds, readsPerCpuSecond: cpu > 0 ? calls / cpu : null };
  };
  return {
    rate: reads / seconds,
    clientCores: done.reduce((sum, result) => sum + result.cpuMicros, 0) / 1e6 / seconds,
    nodes: before.map((was, i) => node(was, after[i]!)),
  };
}

const percent = (share: number) => `${Math.round(share * 100)}%`;

async function readThroughput(context: BenchContext): Promise<void> {
  context.note('starting a primary with 2 replicas and 3 sentinels');
  const topology = await PrivateRedisSentinel.start({ replicas: 2 });
  const processSets = new Map<SetupId, ReaderProcess[]>();
  let usage: RedisNodeUsage | undefined;
  let budgetGroups: CpuBudgetGroups | undefined;
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
    const ports = topology.dataPorts;
    usage = await RedisNodeUsage.open(ports);
    // After the load: the budget stands for the servers' capacity to serve reads, not for how fast a table loads.
    const { budget, groups } = applyServerBudget(context, usage.processIds);
    budgetGroups = groups;
    const readersPerProcess = READERS / READER_PROCESSES;
    if (!Number.isInteger(readersPerProcess)) throw new Error(`TABLECACHE_BENCH_READER_PROCESSES must divide ${READERS}.`);
    const sentinel = { sentinels: topology.sentinelUrls, name: topology.name };
    const connections: Record<SetupId, { connection: ReaderProcessOptions['connection']; readFrom: ReadFrom }> = {
      primary: { connection: sentinel, readFrom: 'primary' },
      replicas: { connection: sentinel, readFrom: 'replica' },
      oneReplica: { connection: { url: `redis://127.0.0.1:${ports.find((port) => port !== primaryPort)!}` }, readFrom: 'replica' },
    };
    for (const { id, label } of SETUPS) {
      context.note(`starting ${READER_PROCESSES} reader processes of ${readersPerProcess} readers: ${label}`);
      const options = { ...connections[id], keyPrefix, table: 'users', readers: readersPerProcess, records: RECORDS, pageSize: PAGE_SIZE };
      const set: ReaderProcess[] = [];
      processSets.set(id, set);
      for (const started of await Promise.allSettled(Array.from({ length: READER_PROCESSES }, () => startReaderProcess(options)))) {
        if (started.status === 'rejected') throw started.reason;
        set.push(started.value);
      }
    }
    const slices = new Map<SetupId, SliceMeasurement[]>(SETUPS.map(({ id }) => [id, []]));
    // A warm-up slice per setup: each reader process compiles its read path on its own.
    for (const processes of processSets.values()) await readSlice(processes, usage, 1.5);
    for (let slice = 0; slice < SLICES; slice++) {
      for (const [id, processes] of processSets) {
        context.note(`slice ${slice + 1}/${SLICES}: ${READERS} readers in ${READER_PROCESSES} processes, ${id}`);
        slices.get(id)!.push(await readSlice(processes, usage, SLICE_SECONDS));
      }
    }
    printReadTables(context, slices, ports, primaryPort, budget);
  } finally {
    try {
      for (const processes of processSets.values()) await Promise.all(processes.map((process) => process.stop()));
      usage?.close();
      await topology.stop();
    } finally {
      const left = budgetGroups?.remove() ?? [];
      if (left.length > 0) context.note(`could not remove the cgroups ${left.join(', ')}: remove them with rmdir`);
    }
  }
}

function printReadTables(
  context: BenchContext,
  slices: ReadonlyMap<SetupId, readonly SliceMeasurement[]>,
  ports: readonly number[],
  primaryPort: number,
  budget: ServerBudget,
): void {
  const nodeName = (i: number) => (ports[i] === primaryPort ? 'P' : `R${ports.slice(0, i + 1).filter((port) => port !== primaryPort).length}`);
  const summary = (id: SetupId) => {
    const measured = slices.get(id)!;
    const perNode = ports.map((_, i) => ({
      util: median(measured.map((slice) => slice.nodes[i]!.util)),
      served: median(measured.map((slice) => slice.nodes[i]!.served)),
      readsPerCpuSecond: median(measured.flatMap((slice) => (slice.nodes[i]!.readsPerCpuSecond === null ? [] : [slice.nodes[i]!.readsPerCpuSecond!]))),
    }));
    const rate = median(measured.map((slice) => slice.rate));
    // Capacity: what the nodes that serve the reads would serve with a core each, at the CPU per read they showed.
    const serving = perNode.filter((node) => node.served >= SERVING_SHARE * rate);
    return { rate, clientCores: median(measured.map((slice) => slice.clientCores)), perNode, capacity: serving.reduce((sum, node) => sum + node.readsPerCpuSecond, 0) };
  };
  const summaries = new Map(SETUPS.map(({ id }) => [id, summary(id)]));
  const baseline = summaries.get('primary')!;
  const what = `\`range\` reads of ${PAGE_SIZE} records (of ${RECORDS.toLocaleString('en-US')}), ${READERS} concurrent readers in ${READER_PROCESSES} processes, medians of ${SLICES} interleaved slices of ${SLICE_SECONDS} s`;
  const capped = 'cores' in budget;
  // Utilisation against the budget: ~100% marks the server that limits the setup.
  const share = capped ? budget.cores : 1;
  const of = capped ? '% of its budget' : '% of one core';
  context.printTable(
    capped
      ? `Reader throughput, every Redis data server capped at ${budget.cores} of a core (${budget.version} CPU quota, a group each; readers and sentinels uncapped): ${what}`
      : `Reader throughput end to end, uncapped (${budget.uncappedBecause}): ${what}; every process (readers, Redis servers, sentinels) shares the machine's cores`,
    ['setup', 'reads/s', 'ratio', `Redis CPU per server (${of})`, `busiest server (${of})`, 'reader processes: CPU (cores)', 'reader CPU µs per read'],
    SETUPS.map(({ id, label }) => {
      const { rate, clientCores, perNode } = summaries.get(id)!;
      return [
        label,
        Math.round(rate),
        rate / baseline.rate,
        perNode.map((node, i) => `${nodeName(i)} ${percent(node.util / share)}`).join(', '),
        percent(Math.max(...perNode.map((node) => node.util)) / share),
        clientCores,
        Math.round((clientCores * 1e6) / rate),
      ];
    }),
  );
  context.printTable(
    `Per-server cost, same slices: reads each Redis server served per second of its own CPU; capacity = the sum over the servers serving reads, as if each had a whole core of its own; the last row: one replica given all the readers, to compare its CPU per read with the primary's at a like load`,
    ['setup', 'reads/s served per node', 'reads per node-CPU-second', 'CPU µs per read (serving nodes)', 'capacity (reads/s)', 'capacity ratio'],
    SETUPS.map(({ id, label }) => {
      const { rate, perNode, capacity } = summaries.get(id)!;
      const serving = perNode.flatMap((node, i) => (node.served >= SERVING_SHARE * rate ? [{ ...node, name: nodeName(i) }] : []));
      return [
        label,
        perNode.map((node, i) => `${nodeName(i)} ${Math.round(node.served).toLocaleString('en-US')}`).join(', '),
        serving.map((node) => `${node.name} ${Math.round(node.readsPerCpuSecond).toLocaleString('en-US')}`).join(', '),
        serving.map((node) => `${node.name} ${(1e6 / node.readsPerCpuSecond).toFixed(0)}`).join(', '),
        Math.round(capacity),
        capacity / baseline.capacity,
      ];
    }),
  );
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
  const parts = (process.env.TABLECACHE_BENCH_PARTS ?? 'reads,daemon').split(',').map((part) => part.trim());
  const unknown = parts.filter((part) => part !== 'reads' && part !== 'daemon');
  if (unknown.length > 0) throw new Error(`TABLECACHE_BENCH_PARTS names unknown parts (${unknown.join(', ')}); known: reads, daemon`);
  if (parts.includes('reads')) await readThroughput(context);
  if (parts.includes('daemon')) await daemonLatency(context);
}
