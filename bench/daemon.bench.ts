/**
 * The daemon end to end: commit-to-visible latency of single-row UPDATEs
 * through the reader client at several commit rates, the highest rate it
 * sustains, and a 100,000-row UPDATE (reloaded after the trigger's coarse
 * message, and refreshed by key when every key is notified). The daemon runs as a child process
 * (bench/daemonProcess.ts), as in production; the baseline is the bare NOTIFY
 * round trip (commit to a listener receiving it) at the same rate. Per
 * phase it also reports the daemon's steps and the wait for each step's
 * snapshot tick (issue #12's cut: one NOTIFY round trip per step).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openReader, type TableReader } from '../lib/client/index.ts';
import { waitForBarrier } from '../lib/client/barrier.ts';
import { sendBarrier } from '../lib/postgres/barrier.ts';
import { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { QueryArgsDbRecordsSpec } from '../lib/core/dbAccess.ts';
import { parseConfig } from '../daemon/config/loadConfig.ts';
import { triggerSpecFromConfig } from '../daemon/config/triggerSpecFromConfig.ts';
import { installTriggers } from '../sql-triggers/installTriggers.ts';
import { installLogicalCapture } from '../sql-triggers/logicalCapture.ts';
import { logicalCaptureSpecFromConfig } from '../daemon/config/logicalCaptureSpecFromConfig.ts';
import { PrivatePostgres } from '../test/support/privateServers.ts';
import type { BenchContext } from './benchContext.ts';
import { elapsedMs, percentiles } from './benchTable.ts';
import { deleteKeys } from './redisLoad.bench.ts';
import { TableKeys } from '../lib/redis/keyLayout.ts';
import { JOINED_USERS_QUERY, seedJoinedUsers } from './seedDatabase.ts';

const USERS = 100_000;
const CITIES = 1_000;
const CHANNEL = 'tc_bench_daemon';
const PHASE_MS = 4_000;
const RATES = [100, 1_000, 5_000];
const WRITERS = 8;
const DAEMON_MAIN = fileURLToPath(new URL('./daemonProcess.ts', import.meta.url));

type User = Record<string, unknown>;

interface LatencyRun {
  readonly targetRate: number | null;
  readonly achievedRate: number;
  readonly latencies: number[];
  /** p99 of the first and the last second: a growing lag shows as last ≫ first. */
  readonly firstSecondP99: number;
  readonly lastSecondP99: number;
}

/** Writes the bench's daemon configuration (the `users` join) to a temporary file. Also used by the near-cache rows of clientRead. */
export function writeConfig(
  url: string,
  redisUrl: string,
  keyPrefix: string,
  batchWindowMs: number,
  capture: { method: 'triggers' | 'logical'; maxKeysPerStatement?: number } = { method: 'triggers' },
): { file: string; remove(): void; raw: object } {
  const directory = mkdtempSync(path.join(tmpdir(), 'tc-bench-daemon-'));
  const file = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url },
    redis: { url: redisUrl, keyPrefix },
    triggers: { channel: CHANNEL, ...(capture.maxKeysPerStatement === undefined ? {} : { maxKeysPerStatement: capture.maxKeysPerStatement }) },
    capture: { method: capture.method },
    // The queue's flood bound (default 5 × maxBatchKeys = 50,000) would turn the by-key rows' 100,000 notified
    // keys into a key_flood reload; raised, those rows measure what they name. The paced phases never reach it.
    daemon: { batchWindowMs, logLevel: 'warn', maxQueuedKeysPerTable: 2 * USERS },
    tables: {
      users: {
        query: JOINED_USERS_QUERY,
        primaryKey: 'user_id',
        sources: {
          'public.users': { key: 'user_id' },
          'public.users_cities': { key: 'user_id' },
          'public.cities': { key: 'city_id', match: 'city_id' },
        },
      },
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  return { file, raw, remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/** Per step since the last {@link RunningDaemon.stepStats}: the wait for its cut, and what proved it (`tick` or a writer's `commit`). */
export interface StepStats {
  readonly tickMs: number[];
  readonly provenBy: string[];
  /** Keys the steps refreshed, and of those, the keys read while their cut was proven. */
  readonly refreshedKeys: number;
  readonly readAheadKeys: number;
}

/** A daemon child process: `stepStats` gives the cuts of the steps since the last call; `stop` ends it. */
export interface RunningDaemon {
  /** The child's process id (for its CPU time in /proc). */
  readonly pid: number;
  stepStats(): Promise<StepStats>;
  stop(): Promise<void>;
}

/**
 * Starts the daemon as a child process (`nodeArgs` before the script, e.g.
 * `--cpu-prof`; `main`: another checkout's bench/daemonProcess.ts, for a
 * before-and-after comparison in one run); resolves once it has loaded the table.
 */
export async function startDaemon(file: string, nodeArgs: readonly string[] = [], main = DAEMON_MAIN): Promise<RunningDaemon> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', main, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  let statsWaiter: ((stats: StepStats) => void) | null = null;
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line.includes('"step stats"')) continue;
      statsWaiter?.(JSON.parse(line) as StepStats);
      statsWaiter = null;
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"daemon ready"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the daemon exited with ${code} before loading: ${output.slice(-2000)}`)));
  });
  return {
    pid: child.pid!,
    stepStats: () =>
      new Promise((resolve) => {
        statsWaiter = resolve;
        child.stdin.write('stats\n');
      }),
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Where the observer of {@link measureUpdates} learns that the daemon
 * published a step: a subscribed connection and the table's change channel
 * (`TableKeys.changes`).
 */
export interface StepAnnouncements {
  readonly subscriber: Redis;
  readonly channel: string;
}

/** Subscribes a new connection to table `table`'s change channel, for {@link measureUpdates}. */
export async function subscribeToSteps(redisUrl: string, keyPrefix: string, table: string): Promise<StepAnnouncements & { close(): void }> {
  const subscriber = new Redis(redisUrl);
  const channel = new TableKeys(table, keyPrefix).changes;
  await subscriber.subscribe(channel);
  return { subscriber, channel, close: () => subscriber.disconnect() };
}

/** How often the observer reads anyway while updates are outstanding and no step is announced (a missed message must not stall it). */
const OBSERVER_FALLBACK_MS = 50;

/**
 * Sends single-row UPDATEs at `rate` per second (or as fast as `WRITERS`
 * connections go when `rate` is null) for `PHASE_MS`, each to a new version
 * of one user's name (users 1 to `users`, round robin); an observer reads
 * every outstanding user in one `getMany` until it shows that version.
 * Latency: from the COMMIT's acknowledgement to the read that first shows it.
 *
 * With `announcements`, the observer reads once per step the daemon
 * announces on the table's change channel (and once after a commit
 * acknowledged after an announcement, which may have been that commit's),
 * instead of reading in a loop: at 1,000 updates/s the loop made about
 * 4,000 `getMany` calls a second, taking CPU (its own and Redis's) from the
 * daemon and Postgres on the same 2 cores, which adds to what it measures
 * (docs/daemon.md, Overlapping steps). Without, it reads in a loop while
 * anything is outstanding (for readers the daemon does not announce to).
 */
export async function measureUpdates(
  pool: pg.Pool,
  reader: TableReader<User>,
  rate: number | null,
  phase: string,
  users = USERS,
  announcements?: StepAnnouncements,
): Promise<LatencyRun> {
  const outstanding = new Map<number, { name: string; committedAt: number }>();
  const seen: { at: number; latency: number }[] = [];
  let writing = true;
  let sent = 0;
  const started = performance.now();
  // Steps announced since the observer's last read; each announcement bumps `announced`.
  let due = announcements === undefined;
  let announced = 0;
  let wake: () => void = () => {};
  const onMessage = (channel: string) => {
    if (channel !== announcements?.channel) return;
    announced++;
    due = true;
    wake();
  };
  announcements?.subscriber.on('message', onMessage);
  const fallback = announcements === undefined ? undefined : setInterval(() => {
    due = true;
    wake();
  }, OBSERVER_FALLBACK_MS);
  // The observer sleeps until there is something to look for (and, with announcements, a step that may show it).
  const poll = (async () => {
    while (writing || outstanding.size > 0) {
      if (outstanding.size === 0 || !due) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if ((!writing && outstanding.size === 0) || (outstanding.size > 0 && due)) resolve();
        });
        continue;
      }
      if (announcements !== undefined) due = false;
      const keys = [...outstanding.keys()];
      const users = await reader.getMany(keys);
      const now = performance.now();
      keys.forEach((key, i) => {
        const expected = outstanding.get(key);
        if (expected !== undefined && users[i]?.['user_name'] === expected.name) {
          seen.push({ at: now - started, latency: now - expected.committedAt });
          outstanding.delete(key);
        }
      });
      if (now - started > PHASE_MS + 30_000) throw new Error(`${outstanding.size} updates not visible 30 s after the phase ended`);
    }
  })();
  let nextUser = 1;
  const writeOne = async () => {
    const user = nextUser;
    nextUser = (nextUser % users) + 1;
    const name = `${phase} ${sent++}`;
    // A user still outstanding is skipped: its next version would hide this one.
    if (outstanding.has(user)) return;
    const announcedBefore = announced;
    await pool.query('UPDATE users SET name = $1 WHERE user_id = $2', [name, user]);
    outstanding.set(user, { name, committedAt: performance.now() });
    // A step announced while the UPDATE was in flight may have published it already.
    if (announced !== announcedBefore) due = true;
    wake();
  };
  try {
    const writers = Array.from({ length: WRITERS }, async (_, writer) => {
      for (let i = writer; ; i += WRITERS) {
        const dueAt = rate === null ? 0 : started + (i * 1000) / rate;
        if (dueAt - started >= PHASE_MS || performance.now() - started >= PHASE_MS) return;
        const wait = dueAt - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        await writeOne();
      }
    });
    await Promise.all(writers);
    const writeMs = elapsedMs(started);
    writing = false;
    wake();
    await poll;
    const latencies = seen.map((entry) => entry.latency);
    const p99Between = (from: number, to: number) => percentiles(seen.filter((entry) => entry.at >= from && entry.at < to).map((entry) => entry.latency), [99])[99] ?? 0;
    return {
      targetRate: rate,
      achievedRate: (latencies.length * 1000) / writeMs,
      latencies,
      firstSecondP99: p99Between(0, 1000),
      lastSecondP99: p99Between(PHASE_MS - 1000, PHASE_MS + 60_000),
    };
  } finally {
    clearInterval(fallback);
    announcements?.subscriber.off('message', onMessage);
  }
}

/**
 * The latency baseline: a bare NOTIFY's round trip at `rate` per second, from
 * sending `SELECT pg_notify(…)` (an autocommitted statement) to a plain pg
 * LISTEN client receiving it: the floor under any LISTEN-driven cache.
 */
async function measureNotifyRoundTrip(url: string, pool: pg.Pool, rate: number): Promise<number[]> {
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  await listener.query('LISTEN tc_bench_baseline');
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  listener.on('notification', (message) => {
    const at = sentAt.get(message.payload ?? '');
    if (at !== undefined) latencies.push(performance.now() - at);
  });
  const count = Math.round((rate * PHASE_MS) / 1000);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, writer) => {
      for (let i = writer; i < count; i += WRITERS) {
        const wait = started + (i * 1000) / rate - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        sentAt.set(String(i), performance.now());
        await pool.query("SELECT pg_notify('tc_bench_baseline', $1)", [String(i)]);
      }
    }),
  );
  const deadline = performance.now() + 5_000;
  while (latencies.length < count && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await listener.end();
  return latencies;
}

function latencyRow(
  label: string,
  rate: number | null,
  achieved: number,
  latencies: number[],
  baseline: number[] | null,
  bounded: string,
  { tickMs, provenBy, refreshedKeys, readAheadKeys }: StepStats,
): (string | number | null)[] {
  const ours = percentiles(latencies, [50, 95, 99]);
  const base = baseline === null ? null : percentiles(baseline, [50, 99]);
  const ticks = percentiles(tickMs, [50, 99]);
  const byCommit = provenBy.length === 0 ? null : `${Math.round((100 * provenBy.filter((proof) => proof === 'commit').length) / provenBy.length)}%`;
  return [
    label,
    rate ?? 'max',
    Math.round(achieved),
    ours[50]!,
    ours[95]!,
    ours[99]!,
    base?.[50] ?? null,
    base === null ? null : ours[50]! / base[50]!,
    bounded,
    tickMs.length,
    tickMs.length === 0 ? null : ticks[50]!,
    tickMs.length === 0 ? null : ticks[99]!,
    byCommit,
    refreshedKeys === 0 ? null : `${Math.round((100 * readAheadKeys) / refreshedKeys)}%`,
  ];
}

export async function run(context: BenchContext): Promise<void> {
  await using db = await context.createDatabase('daemon');
  context.note(`seeding ${USERS} users`);
  await seedJoinedUsers(db.url, { users: USERS, cities: CITIES });
  const keyPrefix = `tcbench:daemon:${randomBytes(4).toString('hex')}:`;
  const pool = new pg.Pool({ connectionString: db.url, max: WRITERS + 2 });
  // Dropping the database at the end ends idle connections; unhandled, the event would crash the run.
  pool.on('error', () => {});
  const redis = new Redis(context.redisUrl);
  const configs = [0, 10].map((windowMs) => ({ windowMs, ...writeConfig(db.url, context.redisUrl, keyPrefix, windowMs) }));
  const steps = await subscribeToSteps(context.redisUrl, keyPrefix, 'users');
  try {
    await installBenchTriggers(pool, configs[0]!.raw, {});
    const reader = await openReader<User>({ redis, table: 'users', keyPrefix, timeoutMs: 10_000 });
    const rows: (string | number | null)[][] = [];
    const baselines = new Map<number, number[]>();
    for (const rate of RATES) {
      context.note(`baseline: NOTIFY round trip at ${rate}/s`);
      baselines.set(rate, await measureNotifyRoundTrip(db.url, pool, rate));
    }
    context.note('baseline: unpaced UPDATEs with the triggers on and no daemon');
    const ceiling = await measureWriteCeiling(pool);
    rows.push(['baseline: no daemon (Postgres with the triggers)', 'max', Math.round(ceiling), null, null, null, null, null, '', null, null, null, null, null]);
    let bulk: { reloadMs: number; byKeyMs: number; readMs: number } | null = null;
    for (const config of configs) {
      context.note(`daemon with batchWindowMs ${config.windowMs}: loading ${USERS} users`);
      const daemon = await startDaemon(config.file);
      try {
        for (const rate of [...RATES, null]) {
          context.note(`  ${rate ?? 'unpaced'} updates/s for ${PHASE_MS} ms`);
          await daemon.stepStats();
          const result = await measureUpdates(pool, reader, rate, `w${config.windowMs}r${rate ?? 'max'}`, USERS, steps);
          const bounded = result.lastSecondP99 <= Math.max(50, 3 * result.firstSecondP99) ? 'yes' : `no (p99 ${Math.round(result.firstSecondP99)} → ${Math.round(result.lastSecondP99)} ms)`;
          const stats = await daemon.stepStats();
          rows.push(latencyRow(`window ${config.windowMs} ms`, rate, result.achievedRate, result.latencies, rate === null ? null : baselines.get(rate)!, bounded, stats));
        }
        if (config.windowMs === 0) {
          context.note('  a 100,000-row UPDATE, reloaded (the trigger sends one coarse message)');
          const readMs = await measureFullRead(db.url);
          const reloadMs = await measureBulkUpdate(pool, redis, keyPrefix, reader, 'reloaded');
          context.note('  a 100,000-row UPDATE, refreshed by key (maxKeysPerStatement raised so every key travels)');
          await installBenchTriggers(pool, config.raw, { maxKeysPerStatement: USERS });
          const byKeyMs = await measureBulkUpdate(pool, redis, keyPrefix, reader, 'by key');
          await installBenchTriggers(pool, config.raw, {});
          bulk = { reloadMs, byKeyMs, readMs };
        }
      } finally {
        await daemon.stop();
      }
    }
    const logical = await measureLogicalDaemon(context, rows);
    context.printTable(
      `Commit-to-visible latency (ms) of single-row UPDATEs through the reader client, ${USERS.toLocaleString('en-US')} cached users, daemon in a child process`,
      ['daemon', 'target/s', 'achieved/s', 'p50', 'p95', 'p99', 'baseline: NOTIFY round trip p50', 'p50 ratio', 'lag bounded', 'steps', 'tick wait p50', 'tick wait p99', "steps cut by a writer's commit", 'keys read during the cut'],
      rows,
    );
    if (bulk !== null) {
      context.printTable(`A ${USERS.toLocaleString('en-US')}-row UPDATE: commit to fully visible (through a barrier)`, ['variant', 'ms', 'rows/s'], [
        ['baseline: reading the whole query once (PostgresAccess)', bulk.readMs, (USERS * 1000) / bulk.readMs],
        ['tablecache daemon, default triggers (one coarse message, table reloaded): UPDATE commit to barrier reached', bulk.reloadMs, (USERS * 1000) / bulk.reloadMs],
        ['ratio', bulk.reloadMs / bulk.readMs, null],
        [`tablecache daemon, maxKeysPerStatement ${USERS.toLocaleString('en-US')} (every key notified, refreshed by key in = ANY batches)`, bulk.byKeyMs, (USERS * 1000) / bulk.byKeyMs],
        ['ratio', bulk.byKeyMs / bulk.readMs, null],
        ['tablecache daemon, logical capture (more keys than maxKeysPerStatement in one transaction: table reloaded)', logical.reloadMs, (USERS * 1000) / logical.reloadMs],
        [`tablecache daemon, logical capture, maxKeysPerStatement ${USERS.toLocaleString('en-US')} (refreshed by key)`, logical.byKeyMs, (USERS * 1000) / logical.byKeyMs],
      ]);
    }
    await reader.close();
  } finally {
    steps.close();
    for (const config of configs) config.remove();
    await deleteKeys(redis, `*${keyPrefix}*`);
    redis.disconnect();
    await pool.end();
  }
}

/**
 * The logical capture's rows (issue #16): the same phases at 100 and 1,000
 * updates/s and unpaced, and the 100,000-row UPDATE, on a private cluster
 * with `wal_level = logical` (fsync and synchronous_commit on, like the
 * logicalDecoding bench's), the daemon streaming its pgoutput slot.
 */
async function measureLogicalDaemon(context: BenchContext, rows: (string | number | null)[][]): Promise<{ reloadMs: number; byKeyMs: number }> {
  context.note('logical capture: starting a private cluster with wal_level = logical');
  const server = await PrivatePostgres.start({ fsync: 'on', synchronous_commit: 'on', shared_buffers: '128MB', max_wal_size: '1GB', wal_level: 'logical', max_replication_slots: 4, max_wal_senders: 4 });
  const keyPrefix = `tcbench:daemonlogical:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(context.redisUrl);
  const pool = new pg.Pool({ connectionString: server.url, max: WRITERS + 2 });
  pool.on('error', () => {});
  const configs = [undefined, USERS].map((maxKeysPerStatement) =>
    writeConfig(server.url, context.redisUrl, keyPrefix, 0, { method: 'logical', ...(maxKeysPerStatement === undefined ? {} : { maxKeysPerStatement }) }),
  );
  let steps: (StepAnnouncements & { close(): void }) | null = null;
  try {
    context.note(`  seeding ${USERS} users`);
    await seedJoinedUsers(server.url, { users: USERS, cities: CITIES });
    const client = await pool.connect();
    try {
      await installLogicalCapture(client, logicalCaptureSpecFromConfig(parseConfig(configs[0]!.raw, { file: 'bench' })));
    } finally {
      client.release();
    }
    const reader = await openReader<User>({ redis, table: 'users', keyPrefix, timeoutMs: 10_000 });
    steps = await subscribeToSteps(context.redisUrl, keyPrefix, 'users');
    const ceiling = await measureWriteCeiling(pool);
    rows.push(['baseline: no daemon (wal_level = logical, slot idle)', 'max', Math.round(ceiling), null, null, null, null, null, '', null, null, null, null, null]);
    let daemon = await startDaemon(configs[0]!.file);
    let reloadMs: number;
    try {
      for (const rate of [100, 1_000, null]) {
        context.note(`  logical: ${rate ?? 'unpaced'} updates/s for ${PHASE_MS} ms`);
        await daemon.stepStats();
        const result = await measureUpdates(pool, reader, rate, `logical r${rate ?? 'max'}`, USERS, steps ?? undefined);
        const bounded = result.lastSecondP99 <= Math.max(50, 3 * result.firstSecondP99) ? 'yes' : `no (p99 ${Math.round(result.firstSecondP99)} → ${Math.round(result.lastSecondP99)} ms)`;
        rows.push(latencyRow('logical capture, window 0 ms', rate, result.achievedRate, result.latencies, null, bounded, await daemon.stepStats()));
      }
      context.note('  logical: a 100,000-row UPDATE (more keys than maxKeysPerStatement: reloaded)');
      reloadMs = await measureBulkUpdate(pool, redis, keyPrefix, reader, 'logical reloaded', 'logical');
    } finally {
      await daemon.stop();
    }
    daemon = await startDaemon(configs[1]!.file);
    try {
      context.note('  logical: a 100,000-row UPDATE refreshed by key');
      const byKeyMs = await measureBulkUpdate(pool, redis, keyPrefix, reader, 'logical by key', 'logical');
      await reader.close();
      return { reloadMs, byKeyMs };
    } finally {
      await daemon.stop();
    }
  } finally {
    steps?.close();
    for (const config of configs) config.remove();
    await deleteKeys(redis, `*${keyPrefix}*`);
    redis.disconnect();
    await pool.end();
    await server.stop();
  }
}

/** Single-row UPDATEs per second that `WRITERS` unpaced connections commit with the triggers on and nothing listening. */
async function measureWriteCeiling(pool: pg.Pool): Promise<number> {
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, writer) => {
      for (let user = writer + 1; performance.now() - started < PHASE_MS; user += WRITERS) {
        await pool.query('UPDATE users SET name = $1 WHERE user_id = $2', [`ceiling ${user}`, user]);
        done++;
      }
    }),
  );
  return (done * 1000) / elapsedMs(started);
}

/** The baseline of the bulk UPDATE: reading the whole query once. */
async function measureFullRead(url: string): Promise<number> {
  const access = new PostgresAccess({ connectionString: url });
  const started = performance.now();
  let rows = 0;
  for await (const _ of access.getRecords(new QueryArgsDbRecordsSpec(JOINED_USERS_QUERY, []))) rows++;
  const readMs = elapsedMs(started);
  await access.close();
  if (rows !== USERS) throw new Error(`expected ${USERS} rows, read ${rows}`);
  return readMs;
}

/** Updates every user's name; resolves to the ms from the UPDATE to the daemon reaching a barrier sent after it. */
async function measureBulkUpdate(pool: pg.Pool, redis: Redis, keyPrefix: string, reader: TableReader<User>, label: string, method: 'triggers' | 'logical' = 'triggers'): Promise<number> {
  const suffix = ` ${label}`;
  const started = performance.now();
  await pool.query('UPDATE users SET name = name || $1', [suffix]);
  const id = await sendBarrier(pool, { channel: CHANNEL, method });
  await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 60_000 });
  const ms = elapsedMs(started);
  for (const user of [1, USERS / 2, USERS]) {
    const record = await reader.get(user);
    if (!String(record?.['user_name']).endsWith(suffix)) throw new Error(`user ${user} is not updated after the barrier: ${JSON.stringify(record)}`);
  }
  return ms;
}

/** (Re)installs the triggers of the bench's configuration, with `triggers` settings overriding it. */
export async function installBenchTriggers(pool: pg.Pool, raw: object, triggers: object): Promise<void> {
  const base = raw as { triggers: object };
  const config = parseConfig({ ...base, triggers: { ...base.triggers, ...triggers } }, { file: 'bench' });
  const client = await pool.connect();
  try {
    await installTriggers(client, triggerSpecFromConfig(config));
  } finally {
    client.release();
  }
}
