import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import type pg from 'pg';
import { waitForBarrier } from '../../lib/client/barrier.ts';
import { openReader } from '../../lib/client/index.ts';
import { sendBarrier } from '../../lib/postgres/barrier.ts';
import { verifyCache, type TableVerification } from '../../daemon/verifyCache.ts';
import { createUsers, installConfigTriggers, writeSeedConfig } from '../integration/daemon/daemonHarness.ts';
import { installConfigCapture, startLogicalPostgres } from '../support/logicalPostgres.ts';
import { PrivateRedisCluster } from '../support/privateRedisTopology.ts';
import { PrivatePostgres, PrivateRedis } from '../support/privateServers.ts';
import { waitFor } from '../support/waitFor.ts';
import { ChaosWriters, PROBE_BARRIER_TIMEOUT_MS, StaleReadProbe, createProbeUsers, resilientPool, timeUntilWriteVisible, type ProbeCounts, type ProbeTarget, type WriterCounts } from './chaosWorkload.ts';
import { ChaosDaemons, FAULT_KINDS, faultKindsFor, injectFault, type ChaosRedis, type FaultKind } from './faultInjectors.ts';
import { TableKeys } from '../../lib/redis/keyLayout.ts';
import { accountsTableConfig, createAccounts, runTransferWriter, type TransferCounts, type TransferTable } from '../integration/daemon/transferWorkload.ts';
import { SeededRandom } from './seededRandom.ts';

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  readonly seed: number;
  /** How long faults are injected; the run goes on until every kind in `faults` was injected at least once. */
  readonly durationMs: number;
  /** The fault kinds (default: every kind that applies to `redis`, {@link faultKindsFor}); none: the workload alone for `durationMs`. */
  readonly faults?: readonly FaultKind[];
  /** One private redis-server (default), or a private Redis Cluster of 3 masters with a replica each (for `redisFailover`). */
  readonly redis?: ChaosRedis;
  /** The random pause before each fault (default 2–6 s). */
  readonly faultGapMs?: readonly [number, number];
  /** How long the cache may take to serve a fresh write after a fault before the fault counts as not recovered (default 60 s). */
  readonly recoveryTimeoutMs?: number;
  readonly users?: number;
  readonly cities?: number;
  readonly writers?: number;
  /** The writers' combined pace (default 300 transactions per second). */
  readonly transactionsPerSecond?: number;
  readonly readers?: number;
  /**
   * Runs after the schema and triggers exist, before the daemons start: a
   * test of the suite itself breaks the setup here (drops a trigger) to see
   * the run fail.
   */
  readonly afterSetup?: (pool: pg.Pool) => Promise<void>;
  /** The daemons' change source (default `triggers`); `logical` runs Postgres with `wal_level = logical` and streams a slot. */
  readonly capture?: 'triggers' | 'logical';
  /** The daemons' `daemon.leaseTtlMs` (default the daemon's, 5 s): a killed writer's lease expires after it. */
  readonly leaseTtlMs?: number;
  /** A directory to copy every daemon's log into (`daemon-<pid>.log`; default: none). */
  readonly daemonLogDir?: string;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
  /** Aborting stops the run early; it still cleans up (and rejects). */
  readonly signal?: AbortSignal;
}

/** One fault kind's outcome. */
export interface FaultOutcome {
  injected: number;
  recovered: number;
  /** Milliseconds from the end of each recovered fault to a fresh write visible through the reader. */
  readonly recoveryMs: number[];
  /**
   * Injections across which the `users` table was reloaded: its generation
   * after the recovery differed from the one just before the fault. With
   * `capture: logical` a killed daemon's successor resumes from the slot, so
   * `daemonKilled` must reload nothing.
   */
  reloadedAcross: number;
}

/** Everything a chaos run measured. */
export interface ChaosReport {
  readonly seed: number;
  readonly elapsedMs: number;
  readonly workload: { readonly writers: number; readonly transactionsPerSecond: number; readonly readers: number; readonly users: number };
  readonly writes: WriterCounts;
  readonly probe: ProbeCounts;
  readonly reads: ChaosReads;
  /** What the transfer writers committed (the accounts table the readers check). */
  readonly transfers: TransferCounts;
  readonly faults: Record<FaultKind, FaultOutcome>;
  readonly verification: TableVerification;
  /** Missing + extra + changed records at the end: must be 0. */
  readonly divergent: number;
  readonly daemonCrashes: readonly string[];
}

/** What the reader processes did, summed. */
export interface ChaosReads {
  served: number;
  /** Whole-table reads of `accounts` checked against the transfer invariant. */
  transferChecked: number;
  /** Of those, reads with a wrong account count or total: must be 0. */
  transferTorn: number;
  firstTorn: string | null;
  errors: Record<string, number>;
}

/** The transfer workload's table in the chaos run: its invariant is checked by every reader process. */
const TRANSFER_TABLE: TransferTable = { schema: 'bank', accounts: 200, balance: 1_000 };
/** Transfer writers, and each one's pause between transactions. */
const TRANSFER_WRITERS = 2;
const TRANSFER_PAUSE_MS = 10;

/**
 * How long the end of a run may wait for a probe round and for a barrier
 * after the last write: generous, since on a loaded 2-core machine a step
 * can take seconds, and only a daemon that never marks barriers again needs
 * it all (`recoveryTimeoutMs` is a fault's; the negative control sets it low).
 */
const QUIESCENCE_TIMEOUT_MS = 60_000;

const CHANNEL = 'tc_chaos';
const KEY_PREFIX = 'tcchaos:';
const READER_MAIN = fileURLToPath(new URL('./processes/chaosReader.ts', import.meta.url));

/**
 * A chaos run: a private Postgres and Redis, the seed schema, two daemons
 * (writer and standby), writers, reader processes and the stale-read probe;
 * faults at seeded random moments until `durationMs` has passed, each
 * followed by a measurement of the time until a fresh write is visible; then
 * quiescence (writers stopped, a barrier reached) and `verifyCache`.
 * Everything it starts is stopped and removed, also when it fails or is aborted.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const random = new SeededRandom(options.seed);
  const kinds = options.faults ?? faultKindsFor(options.redis ?? 'single');
  const [users, cities] = [options.users ?? 2_000, options.cities ?? 50];
  const workload = { writers: options.writers ?? 3, transactionsPerSecond: options.transactionsPerSecond ?? 300, readers: options.readers ?? 3, users };
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const starting: Promise<unknown>[] = [];
  const startServer = <T extends { stop(): Promise<void> }>(start: () => Promise<T>): Promise<T> => {
    options.signal?.throwIfAborted();
    const up = start().then((server) => {
      cleanups.push(() => server.stop());
      return server;
    });
    starting.push(up);
    return up;
  };
  const started = performance.now();
  // On abort (SIGINT) the run stops where it is: the cleanups must not wait for a fault or a recovery to finish.
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(options.signal!.reason);
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    return await Promise.race([run(), aborted]);
  } finally {
    // A server still starting when the run was aborted is stopped once it is up.
    await Promise.allSettled(starting);
    for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => {});
  }

  async function run(): Promise<ChaosReport> {
    const capture = options.capture ?? 'triggers';
    const postgres = await startServer(() => (capture === 'logical' ? startLogicalPostgres() : PrivatePostgres.start()));
    const redisServer = await startServer<PrivateRedis | PrivateRedisCluster>(() => (options.redis === 'cluster' ? PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 1 }) : PrivateRedis.start()));
    const nodes = redisServer instanceof PrivateRedisCluster ? redisServer.nodeUrls : null;
    const redisUrl = redisServer instanceof PrivateRedis ? redisServer.url : '';
    log(`private Postgres at ${postgres.url}, Redis ${nodes === null ? `at ${redisUrl}` : `Cluster at ${nodes.join(', ')}`}`);

    const pool = resilientPool(postgres.url, 8);
    cleanups.push(() => pool.end());
    await createUsers(pool, users, cities);
    await createProbeUsers(pool);
    await createAccounts(pool, TRANSFER_TABLE);
    const seedConfig = writeSeedConfig({
      postgresUrl: postgres.url,
      redisUrl,
      keyPrefix: KEY_PREFIX,
      channel: CHANNEL,
      ...(nodes === null ? {} : { redis: { url: undefined, cluster: { nodes } } }),
      // Info: a restarted daemon's `starting` line says its process is up (a fault ends there), and kept logs show every step of recovery.
      daemon: { logLevel: 'info', ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }) },
      tables: { accounts: accountsTableConfig(TRANSFER_TABLE) },
      capture: { method: capture },
    });
    cleanups.push(() => seedConfig.remove());
    if (capture === 'logical') await installConfigCapture(pool, seedConfig.config);
    else await installConfigTriggers(pool, seedConfig.config);
    await options.afterSetup?.(pool);

    // Fail fast while Redis is down or paused, so that a probe or a lease look-up never hangs on a fault.
    const redis =
      nodes === null
        ? new Redis(redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 1_000, enableOfflineQueue: false, retryStrategy: () => 50 })
        : new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 1_000 }, clusterRetryStrategy: () => 50 });
    redis.on('error', () => {});
    cleanups.push(() => redis.disconnect());
    const daemons = new ChaosDaemons(seedConfig.file, redis, `{${KEY_PREFIX}users}:lease`, options.daemonLogDir);
    cleanups.push(() => daemons.close());
    daemons.startMissing();

    // The probe reads through a near-cache: a stale read then also means a barrier that did not reach it.
    // (A near-cache needs one node: on a cluster the probe reads plainly.)
    const connection = nodes === null ? { url: redisUrl, nearCache: { maxRecords: 1_000 } } : { cluster: { nodes } };
    const reader = await waitFor('a reader on the private Redis', () => openReader({ ...connection, table: 'users', keyPrefix: KEY_PREFIX, timeoutMs: 1_000 }), { timeoutMs: 30_000 });
    cleanups.push(() => reader.close());
    await waitFor('the daemon to load the table', async () => (await reader.info()).loaded, { timeoutMs: 60_000, intervalMs: 50 });
    const target: ProbeTarget = { pool, redis, reader, channel: CHANNEL, keyPrefix: KEY_PREFIX, method: capture };
    log('daemons up, table loaded; starting the workload');

    const readers = Array.from({ length: workload.readers }, (_, index) =>
      spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          READER_MAIN,
          nodes === null ? redisUrl : `cluster:${nodes.join(',')}`,
          KEY_PREFIX,
          String(users),
          String(random.derive(`reader ${index}`).int(1, 2 ** 31)),
          String(TRANSFER_TABLE.accounts),
          String(TRANSFER_TABLE.balance),
          // The first reader reads through a near-cache (one node only).
          index === 0 && nodes === null ? 'near' : 'plain',
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      ),
    );
    cleanups.push(() => readers.forEach((child) => child.kill('SIGKILL')));
    const readerResults = readers.map(lastLine);
    const writers = new ChaosWriters(pool, random.derive('writers'), workload.writers, users, cities, workload.transactionsPerSecond);
    const probe = new StaleReadProbe(target);
    const transfers: TransferCounts = { transfers: 0, replacements: 0, abandoned: 0 };
    const stopTransfers = new AbortController();
    const accountIds = Array.from({ length: TRANSFER_TABLE.accounts }, (_, i) => i + 1);
    const transferWriters = Array.from({ length: TRANSFER_WRITERS }, (_, index) =>
      runTransferWriter(pool, TRANSFER_TABLE, index, accountIds, random.derive(`transfer writer ${index}`), stopTransfers.signal, transfers, TRANSFER_PAUSE_MS),
    );
    cleanups.push(() => writers.stop(), () => probe.stop(), () => stopTransfers.abort());

    const tableKeys = ['users', 'accounts'].map((table) => new TableKeys(table, KEY_PREFIX).meta);
    const faults = await injectFaults(kinds, options, random.derive('faults'), { postgres, redis: redisServer, tableKeys, daemons, target, log });

    // The verdict on stale reads needs probe rounds: on a loaded machine none may have finished during the faults.
    await waitFor('a probe round (write, barrier, read) to complete', () => probe.checked > 0, { timeoutMs: QUIESCENCE_TIMEOUT_MS });
    log('quiescence: stopping the writers, waiting for a barrier');
    const writes = await writers.stop();
    stopTransfers.abort();
    await Promise.all(transferWriters);
    const probeCounts = await probe.stop();
    for (const child of readers) child.stdin!.end();
    const reads = sumReads(await Promise.all(readerResults));
    await quiesce(pool, redis);
    const [verification] = await verifyCache(seedConfig.config);
    return {
      seed: options.seed,
      elapsedMs: performance.now() - started,
      workload,
      writes,
      probe: probeCounts,
      reads,
      transfers,
      faults,
      verification: verification!,
      divergent: verification!.missing + verification!.extra + verification!.changed,
      daemonCrashes: [...daemons.unexpectedExits],
    };
  }

  async function quiesce(pool: pg.Pool, redis: Redis | Cluster): Promise<void> {
    await waitFor(
      'a barrier after the last write (quiescence)',
      async () => {
        const id = await sendBarrier(pool, { channel: CHANNEL, method: options.capture ?? 'triggers' });
        await waitForBarrier(redis, id, { keyPrefix: KEY_PREFIX, timeoutMs: 5_000 });
        return true;
      },
      { timeoutMs: QUIESCENCE_TIMEOUT_MS },
    );
  }
}

interface FaultScene {
  readonly postgres: PrivatePostgres;
  readonly redis: PrivateRedis | PrivateRedisCluster;
  readonly tableKeys: readonly string[];
  readonly daemons: ChaosDaemons;
  readonly target: ProbeTarget;
  readonly log: (line: string) => void;
}

/**
 * Faults one after the other, in seeded shuffled rounds of every kind, each
 * after a seeded pause; after each, the time until a fresh write is visible,
 * then a new standby if a daemon died, running before the next fault.
 */
async function injectFaults(kinds: readonly FaultKind[], options: ChaosOptions, random: SeededRandom, scene: FaultScene): Promise<Record<FaultKind, FaultOutcome>> {
  const outcomes = Object.fromEntries(FAULT_KINDS.map((kind): [FaultKind, FaultOutcome] => [kind, { injected: 0, recovered: 0, recoveryMs: [], reloadedAcross: 0 }])) as Record<FaultKind, FaultOutcome>;
  const [minGap, maxGap] = options.faultGapMs ?? [2_000, 6_000];
  const deadline = performance.now() + options.durationMs;
  let round: FaultKind[] = [];
  let stamp = 1;
  // No fault kinds: the workload alone for the duration (the negative control).
  if (kinds.length === 0) await new Promise((resolve) => setTimeout(resolve, options.durationMs));
  while (kinds.length > 0 && (performance.now() < deadline || kinds.some((kind) => outcomes[kind].injected === 0))) {
    options.signal?.throwIfAborted();
    if (round.length === 0) round = random.shuffle(kinds);
    const kind = round.shift()!;
    await new Promise((resolve) => setTimeout(resolve, random.int(minGap, maxGap)));
    const generationBefore = await usersGeneration(scene.target);
    await injectFault(kind, { postgres: scene.postgres, redis: scene.redis, tableKeys: scene.tableKeys, daemons: scene.daemons, channel: CHANNEL, random });
    const ended = performance.now();
    outcomes[kind].injected++;
    const recoveryMs = await timeUntilWriteVisible(scene.target, ended, stamp++, options.recoveryTimeoutMs ?? 60_000);
    if (recoveryMs !== undefined) {
      outcomes[kind].recovered++;
      outcomes[kind].recoveryMs.push(recoveryMs);
      const generationAfter = await usersGeneration(scene.target);
      if (generationBefore !== null && generationAfter !== null && generationAfter !== generationBefore) outcomes[kind].reloadedAcross++;
    }
    scene.log(`${kind}: ${recoveryMs === undefined ? 'NOT recovered' : `recovered in ${Math.round(recoveryMs)} ms`}`);
    // Up before the next fault: a standbyTakeover must not wait for a replacement standby's process to start.
    await scene.daemons.startMissingAndWait();
  }
  return outcomes;
}

/** The generation readers see of `users` (every load or reload makes a new one); `null` when Redis does not answer. */
async function usersGeneration(target: ProbeTarget): Promise<number | null> {
  return (await target.reader.info().catch(() => null))?.generation ?? null;
}

/** The last line a child process writes to stdout before it exits (its JSON summary). */
async function lastLine(child: ChildProcess): Promise<string> {
  let last = '';
  for await (const line of createInterface({ input: child.stdout! })) last = line;
  return last;
}

function sumReads(lines: readonly string[]): ChaosReads {
  const total: ChaosReads = { served: 0, transferChecked: 0, transferTorn: 0, firstTorn: null, errors: {} };
  for (const line of lines) {
    const counts = JSON.parse(line || '{"served":0,"transferChecked":0,"transferTorn":0,"firstTorn":null,"errors":{"noSummary":1}}') as ChaosReads;
    total.served += counts.served;
    total.transferChecked += counts.transferChecked;
    total.transferTorn += counts.transferTorn;
    total.firstTorn ??= counts.firstTorn;
    for (const [code, count] of Object.entries(counts.errors)) total.errors[code] = (total.errors[code] ?? 0) + count;
  }
  return total;
}

/** Whether a report passes: nothing divergent, no stale read, no torn transfer read, every injected kind recovered every time, no daemon crash. */
export function chaosPassed(report: ChaosReport): boolean {
  const everyRecovery = Object.values(report.faults).every((outcome) => outcome.recovered === outcome.injected);
  return report.divergent === 0 && report.probe.stale === 0 && report.reads.transferTorn === 0 && everyRecovery && report.daemonCrashes.length === 0;
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

/** The report as markdown tables. */
export function formatChaosReport(report: ChaosReport): string {
  const committed = Object.entries(report.writes.committed).filter(([operation]) => operation !== 'rollback');
  const totalCommitted = committed.reduce((sum, [, count]) => sum + count, 0);
  const injected = Object.entries(report.faults).filter(([, outcome]) => outcome.injected > 0);
  const errors = Object.entries(report.reads.errors).map(([code, count]) => `${code} ${count}`).join(', ') || 'none';
  const lines = [
    `Seed ${report.seed}, ${(report.elapsedMs / 1000).toFixed(0)} s; ${report.workload.users} users at the start, ` +
      `${report.workload.writers} writers at ${report.workload.transactionsPerSecond} transactions/s together, ${report.workload.readers} reader processes.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| changes committed | ${totalCommitted} (${committed.map(([operation, count]) => `${operation} ${count}`).join(', ')}) |`,
    `| transactions rolled back on purpose | ${report.writes.committed.rollback} |`,
    `| write transactions failed (server down, deadlock) | ${report.writes.failed} |`,
    `| faults injected | ${injected.reduce((sum, [, outcome]) => sum + outcome.injected, 0)} (${injected.map(([kind, outcome]) => `${kind} ${outcome.injected}`).join(', ')}) |`,
    `| reads served (reader processes) | ${report.reads.served} |`,
    `| read errors, by code (expected during faults) | ${errors} |`,
    `| probes: write, barrier reached, read | ${report.probe.checked} |`,
    `| probes: barrier not reached in ${PROBE_BARRIER_TIMEOUT_MS / 1000} s / failed | ${report.probe.barrierTimeouts} / ${report.probe.errors} |`,
    `| transfers committed (accounts table) | ${report.transfers.transfers} transfers, ${report.transfers.replacements} replacements |`,
    `| whole-table transfer reads checked | ${report.reads.transferChecked} |`,
    `| **torn transfer reads** (wrong account count or total) | **${report.reads.transferTorn}**${report.reads.firstTorn ? ` (first: ${report.reads.firstTorn})` : ''} |`,
    `| **stale reads** (older than the barrier allowed) | **${report.probe.stale}**${report.probe.firstStale ? ` (${report.probe.firstStale})` : ''} |`,
    `| **divergent records at the end** | **${report.divergent}** (of ${report.verification.postgresRecords}) |`,
    `| daemon crashes | ${report.daemonCrashes.length} |`,
    '',
    '| fault kind | injected | recovered | recovery p50 (ms) | recovery max (ms) | reloaded across |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [kind, outcome] of injected) {
    const sorted = [...outcome.recoveryMs].sort((a, b) => a - b);
    const [p50, max] = sorted.length === 0 ? ['–', '–'] : [percentile(sorted, 0.5).toFixed(0), sorted.at(-1)!.toFixed(0)];
    lines.push(`| ${kind} | ${outcome.injected} | ${outcome.recovered} | ${p50} | ${max} | ${outcome.reloadedAcross} |`);
  }
  return lines.join('\n');
}
