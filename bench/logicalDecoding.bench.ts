/**
 * The write cost of logical decoding (docs/triggers.md, "Logical decoding"):
 * source-table write throughput with a logical replication slot drained
 * continuously, against no slot, on one private cluster started with
 * `wal_level = logical`. Same workloads as triggers.bench.ts: pgbench with 1
 * and 8 writers doing single-row UPDATEs, and one 100,000-row UPDATE.
 *
 * Variants, alternated within each round so a busy neighbour's drift cancels
 * out in the ratios:
 * - no slot, no trigger (the baseline);
 * - a `pgoutput` slot with a publication on the table, drained every 10 ms
 *   by `pg_logical_slot_get_binary_changes` from a separate session (the
 *   decoding runs in that backend, on the same two cores as the writers);
 * - the same slot streamed by pg_recvlogical over the replication protocol,
 *   as a daemon would consume it (the decoding runs in the walsender);
 * - the shipped NOTIFY-payload trigger with a LISTEN session, for a
 *   same-cluster comparison;
 * - the tablecache daemon itself (a child process, bench/daemonConsumer.ts)
 *   caching the table in Redis, once streaming the slot (`capture: logical`)
 *   and once on the shipped trigger (`capture: triggers`): the write cost of
 *   the daemon's own consumer, whether it kept up, and its CPU per update;
 * - no slot on a second private cluster with `wal_level = replica` (what
 *   the shared server runs), for the cost of the setting itself.
 *
 * Both clusters run with fsync and synchronous_commit on and 128 MB of
 * shared_buffers, like the shared server. Needs the Postgres 15 binaries
 * (see test/support/privateServers.ts), pgbench and pg_recvlogical on the
 * PATH, and /proc for the consumers' CPU times; it does not
 * use TABLECACHE_POSTGRES_URL (the daemon uses TABLECACHE_REDIS_URL).
 * TABLECACHE_BENCH_SECONDS per pgbench run (default 3),
 * TABLECACHE_BENCH_ROUNDS rounds (default 6), TABLECACHE_BENCH_VARIANTS
 * (comma-separated names of `VARIANTS`; the baseline always runs) and
 * TABLECACHE_BENCH_DAEMON_NODE_ARGS (Node options of the daemon child, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { installTriggers } from '../sql-triggers/installTriggers.ts';
import type { SourceTableSpec } from '../sql-triggers/triggerSpec.ts';
import { uninstallTriggers } from '../sql-triggers/uninstallTriggers.ts';
import { PrivatePostgres } from '../test/support/privateServers.ts';
import { waitFor } from '../test/support/waitFor.ts';
import type { BenchContext } from './benchContext.ts';
import { elapsedMs, median } from './benchTable.ts';
import { processCpuMs, startDaemonConsumer, type Consumer, type Delivery } from './daemonConsumer.ts';
import { runPgbench } from './pgbench.ts';

const ROWS = 100_000;
const WRITER_COUNTS = [1, 8] as const;
const SLOT = 'tc_bench';
const PUBLICATION = 'tc_bench';
const CHANNEL = 'tablecache_changes';
const TRIGGER_SCHEMA = 'tablecache';
const SOURCE: SourceTableSpec = { schema: 'public', table: 'bench_users', keyColumns: ['user_id'] };
const POLL_INTERVAL_MS = 10;
/**
 * The batch window of the daemon variant tuned for a write-heavy table: each
 * step waits this long for more changes, so the per-step CPU (one refresh
 * query, a few script calls) is shared by more updates, for that much latency.
 */
const WRITE_HEAVY_WINDOW_MS = 50;

/** Like the shared server where it matters for commits; only wal_level differs between the clusters. */
const SERVER_SETTINGS = { fsync: 'on', synchronous_commit: 'on', shared_buffers: '128MB', max_wal_size: '1GB' } as const;

type Variant = 'replica' | 'none' | 'slot' | 'stream' | 'notify' | 'daemonLogical' | 'daemonLogicalWindow' | 'daemonTriggers';
const ALL_VARIANTS: readonly Variant[] = ['none', 'slot', 'stream', 'notify', 'daemonLogical', 'daemonLogicalWindow', 'daemonTriggers', 'replica'];
/** Variants with a consumer whose delivery is reported. */
const CONSUMER_VARIANTS = ['slot', 'stream', 'daemonLogical', 'daemonLogicalWindow', 'daemonTriggers'] as const;
const VARIANT_NAMES: Record<Variant, string> = {
  none: 'no slot, no trigger (baseline), wal_level = logical',
  slot: 'pgoutput slot, drained every 10 ms by SQL',
  stream: 'pgoutput slot, streamed by pg_recvlogical',
  notify: 'NOTIFY-payload trigger (shipped) + LISTEN',
  daemonLogical: 'tablecache daemon, capture logical (streams the slot)',
  daemonLogicalWindow: `tablecache daemon, capture logical, batchWindowMs ${WRITE_HEAVY_WINDOW_MS} (fewer, larger steps)`,
  daemonTriggers: 'tablecache daemon, capture triggers (shipped trigger + NOTIFY)',
  replica: 'no slot, no trigger, wal_level = replica (second cluster)',
};
/** The write-cost target of each consumer with 8 writers (issue 4 for the capture alone, issue 16 for the daemon's own). */
const LOSS_TARGETS: Partial<Record<Variant, number>> = { slot: 0.25, stream: 0.25, notify: 0.25, daemonLogical: 0.2, daemonLogicalWindow: 0.2, daemonTriggers: 0.2 };

/** Settings from the environment, as in triggers.bench.ts. */
function settings() {
  const only = process.env.TABLECACHE_BENCH_VARIANTS?.split(',').map((name) => name.trim());
  const unknown = only?.filter((name) => !ALL_VARIANTS.includes(name as Variant)) ?? [];
  if (unknown.length > 0) throw new Error(`TABLECACHE_BENCH_VARIANTS names unknown variants (${unknown.join(', ')}); known: ${ALL_VARIANTS.join(', ')}`);
  return {
    seconds: Number(process.env.TABLECACHE_BENCH_SECONDS ?? 3),
    rounds: Number(process.env.TABLECACHE_BENCH_ROUNDS ?? 6),
    variants: ALL_VARIANTS.filter((variant) => variant === 'none' || only === undefined || only.includes(variant)),
    daemonNodeArgs: process.env.TABLECACHE_BENCH_DAEMON_NODE_ARGS?.split(' ').filter((arg) => arg !== '') ?? [],
  };
}

const NO_CONSUMER: Consumer = { stop: async () => ({ duringRun: 0, leftAtEnd: 0, catchUpMs: 0, caughtUp: true, decoderCpuMs: 0, receiverCpuMs: 0, lagBytesAtEnd: null, steps: null }) };

/**
 * Drains the slot every 10 ms. Counts the UPDATE ('U') messages of
 * pgoutput's protocol; after the writers stop, one more call takes what the
 * polls had not reached yet. Each call decodes from the slot's restart_lsn
 * again (skipping what was already confirmed): the SQL interface's own
 * overhead, which a streaming consumer does not have.
 */
async function startSlotConsumer(url: string): Promise<Consumer> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const backendPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const drain = async () => {
    const result = await client.query<{ updates: string }>(
      `SELECT count(*) AS updates FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
       WHERE get_byte(data, 0) = ascii('U')`,
      [SLOT, PUBLICATION],
    );
    return Number(result.rows[0]!.updates);
  };
  let running = true;
  let duringRun = 0;
  const polling = (async () => {
    while (running) {
      duringRun += await drain();
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await polling;
      const start = performance.now();
      const leftAtEnd = await drain();
      const catchUpMs = elapsedMs(start);
      const decoderCpuMs = processCpuMs(backendPid);
      await client.end();
      return { duringRun, leftAtEnd, catchUpMs, caughtUp: true, decoderCpuMs, receiverCpuMs: 0, lagBytesAtEnd: null, steps: null };
    },
  };
}

/**
 * A streaming consumer: pg_recvlogical (shipped with Postgres) on the
 * replication protocol, as a daemon would read the slot, output discarded.
 * It has caught up once its walsender has sent past the WAL end at the time
 * the writers stopped.
 */
async function startStreamConsumer(server: PrivatePostgres): Promise<Consumer> {
  const args = ['--start', '--no-loop', '-S', SLOT, '-f', '/dev/null', '-F', '0', '-s', '1', '-o', 'proto_version=1', '-o', `publication_names=${PUBLICATION}`];
  const child = spawn('pg_recvlogical', [...args, '-d', server.url], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const sentLsnReached = async (lsn: string) => {
    const result = await client.query<{ reached: boolean }>(
      `SELECT coalesce(bool_or(r.sent_lsn >= $1::pg_lsn), false) AS reached FROM pg_stat_replication AS r
       JOIN pg_replication_slots AS s ON s.active_pid = r.pid WHERE s.slot_name = $2`,
      [lsn, SLOT],
    );
    return result.rows[0]!.reached;
  };
  await waitFor('pg_recvlogical to start streaming', () => sentLsnReached('0/0'), { timeoutMs: 10_000 }).catch((error: Error) => {
    throw new Error(`${error.message}; pg_recvlogical said: ${stderr}`);
  });
  return {
    async stop() {
      const end = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
      const start = performance.now();
      const caughtUp = await waitFor('pg_recvlogical to catch up', () => sentLsnReached(end), { timeoutMs: 60_000, intervalMs: 5 }).catch(() => false);
      const catchUpMs = elapsedMs(start);
      const walsender = await client.query<{ pid: number }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
      const decoderCpuMs = processCpuMs(walsender.rows[0]!.pid);
      const receiverCpuMs = processCpuMs(child.pid!);
      child.kill('SIGINT');
      await exited;
      await client.end();
      return { duringRun: 0, leftAtEnd: 0, catchUpMs, caughtUp, decoderCpuMs, receiverCpuMs, lagBytesAtEnd: null, steps: null };
    },
  };
}

/** A LISTEN session, as the daemon keeps for the NOTIFY trigger. */
async function startListener(url: string): Promise<Consumer> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let notifications = 0;
  client.on('notification', () => {
    notifications += 1;
  });
  await client.query(`LISTEN ${pg.escapeIdentifier(CHANNEL)}`);
  return {
    async stop() {
      await client.end();
      return { duringRun: notifications, leftAtEnd: 0, catchUpMs: 0, caughtUp: true, decoderCpuMs: 0, receiverCpuMs: 0, lagBytesAtEnd: null, steps: null };
    },
  };
}

/** One cluster's table, pool and script. */
interface Cluster {
  readonly url: string;
  readonly pool: pg.Pool;
}

async function prepareTable(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE bench_users (user_id integer PRIMARY KEY, name text NOT NULL, counter integer NOT NULL DEFAULT 0);
    INSERT INTO bench_users (user_id, name) SELECT g, 'user ' || g FROM generate_series(1, ${ROWS}) AS g;`);
  await pool.query('VACUUM ANALYZE bench_users');
}

/** Puts the logical cluster into `variant`'s state (slot, trigger or neither) and starts its consumer. */
async function enterVariant(server: PrivatePostgres, logical: Cluster, variant: Variant, redisUrl: string, daemonNodeArgs: readonly string[]): Promise<Consumer> {
  const client = await logical.pool.connect();
  try {
    await uninstallTriggers(client, { schema: TRIGGER_SCHEMA, channel: CHANNEL });
    await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
    if (variant === 'slot' || variant === 'stream' || variant === 'daemonLogical' || variant === 'daemonLogicalWindow') await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [SLOT]);
    if (variant === 'notify' || variant === 'daemonTriggers') await installTriggers(client, { schema: TRIGGER_SCHEMA, channel: CHANNEL, sources: [SOURCE] });
  } finally {
    client.release();
  }
  if (variant === 'slot') return startSlotConsumer(logical.url);
  if (variant === 'stream') return startStreamConsumer(server);
  if (variant === 'notify') return startListener(logical.url);
  if (variant === 'daemonLogical' || variant === 'daemonLogicalWindow' || variant === 'daemonTriggers') {
    return startDaemonConsumer({
      capture: variant === 'daemonTriggers' ? 'triggers' : 'logical',
      batchWindowMs: variant === 'daemonLogicalWindow' ? WRITE_HEAVY_WINDOW_MS : 0,
      url: logical.url,
      pool: logical.pool,
      redisUrl,
      triggerSchema: TRIGGER_SCHEMA,
      channel: CHANNEL,
      slot: SLOT,
      publication: PUBLICATION,
      sourceTable: `${SOURCE.schema}.${SOURCE.table}`,
      keyColumn: SOURCE.keyColumns[0]!,
      nodeArgs: daemonNodeArgs,
    });
  }
  return NO_CONSUMER;
}

async function currentWalLsn(pool: pg.Pool): Promise<string> {
  return (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
}

async function walBytesSince(pool: pg.Pool, lsn: string): Promise<number> {
  const result = await pool.query<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes', [lsn]);
  return Number(result.rows[0]!.bytes);
}

/** One measurement: throughput or time, WAL written, and what the consumer delivered. */
interface Sample {
  readonly value: number;
  readonly walBytesPerStatement: number;
  readonly statements: number;
  readonly delivery: Delivery;
}

async function measurePgbench(cluster: Cluster, consumer: Consumer, script: string, writers: number, seconds: number): Promise<Sample> {
  const lsn = await currentWalLsn(cluster.pool);
  const { tps, transactions } = await runPgbench(cluster.url, script, writers, seconds);
  const walBytes = await walBytesSince(cluster.pool, lsn);
  return { value: tps, walBytesPerStatement: walBytes / transactions, statements: transactions, delivery: await consumer.stop() };
}

async function measureBulkUpdate(cluster: Cluster, consumer: Consumer): Promise<Sample> {
  const lsn = await currentWalLsn(cluster.pool);
  const start = performance.now();
  await cluster.pool.query('UPDATE bench_users SET counter = counter + 1');
  const ms = elapsedMs(start);
  const walBytes = await walBytesSince(cluster.pool, lsn);
  return { value: ms, walBytesPerStatement: walBytes, statements: 1, delivery: await consumer.stop() };
}

/** The throughput lost at `ratio` of the baseline, as a percentage. */
function loss(ratio: number): string {
  return `${Math.round((1 - ratio) * 100)}%`;
}

/** Stops the clusters when the run is interrupted, so no server outlives the bench. */
function stopOnSignal(clusters: readonly PrivatePostgres[]): () => void {
  const handler = (signal: NodeJS.Signals) => {
    void Promise.all(clusters.map((cluster) => cluster.stop())).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Measures and prints the tables (see the file comment). */
export async function run(context: BenchContext): Promise<void> {
  const { seconds, rounds, variants, daemonNodeArgs } = settings();
  const servers: PrivatePostgres[] = [];
  const removeSignalHandlers = stopOnSignal(servers);
  const pools: pg.Pool[] = [];
  const scriptDirectory = mkdtempSync(path.join(tmpdir(), 'tablecache-bench-'));
  try {
    context.note('starting private clusters (wal_level = logical and replica)');
    const logicalServer = await PrivatePostgres.start({ ...SERVER_SETTINGS, wal_level: 'logical', max_replication_slots: 4, max_wal_senders: 4 });
    servers.push(logicalServer);
    const replicaServer = await PrivatePostgres.start({ ...SERVER_SETTINGS, wal_level: 'replica' });
    servers.push(replicaServer);
    const cluster = (server: PrivatePostgres): Cluster => {
      const pool = new pg.Pool({ connectionString: server.url, max: 2 });
      pools.push(pool);
      return { url: server.url, pool };
    };
    const logical = cluster(logicalServer);
    const replica = cluster(replicaServer);
    await Promise.all([prepareTable(logical.pool), prepareTable(replica.pool)]);
    await logical.pool.query(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE bench_users`);
    const script = path.join(scriptDirectory, 'update.sql');
    writeFileSync(script, `\\set id random(1, ${ROWS})\nUPDATE bench_users SET counter = counter + 1 WHERE user_id = :id;\n`);

    // Warm-up, not measured: caches, plans, the first full-page writes.
    for (const target of [logical, replica]) await runPgbench(target.url, script, 8, Math.min(seconds, 3));

    const clusterOf = (variant: Variant) => (variant === 'replica' ? replica : logical);
    const samples = new Map<string, Sample[]>();
    const ratios = new Map<string, number[]>();
    const record = <T>(map: Map<string, T[]>, key: string, value: T) => map.set(key, [...(map.get(key) ?? []), value]);
    let roundsMeasured = 0;
    const measureRound = async (key: (variant: Variant) => string, measure: (variant: Variant, consumer: Consumer) => Promise<Sample>) => {
      const values = new Map<Variant, number>();
      // Each round starts at another variant: whatever the previous run left
      // behind (dirty buffers, a checkpoint, catalog changes) falls on each in turn.
      const shift = roundsMeasured++ % variants.length;
      for (const variant of [...variants.slice(shift), ...variants.slice(0, shift)]) {
        const consumer = await enterVariant(logicalServer, logical, variant === 'replica' ? 'none' : variant, context.redisUrl, daemonNodeArgs);
        await clusterOf(variant).pool.query('VACUUM bench_users');
        const sample = await measure(variant, consumer);
        record(samples, key(variant), sample);
        values.set(variant, sample.value);
      }
      for (const variant of variants) record(ratios, key(variant), values.get(variant)! / values.get('none')!);
    };

    for (let round = 0; round < rounds; round++) {
      context.note(`round ${round + 1} of ${rounds}`);
      for (const writers of WRITER_COUNTS) {
        await measureRound(
          (variant) => `${variant}/${writers}`,
          (variant, consumer) => measurePgbench(clusterOf(variant), consumer, script, writers, seconds),
        );
      }
    }
    // A bulk UPDATE takes a fraction of a second: twice the rounds.
    for (let round = 0; round < rounds * 2; round++) {
      await measureRound(
        (variant) => `${variant}/bulk`,
        (variant, consumer) => measureBulkUpdate(clusterOf(variant), consumer),
      );
    }
    await enterVariant(logicalServer, logical, 'none', context.redisUrl, daemonNodeArgs);

    const medianOf = (key: string, pick: (sample: Sample) => number) => median(samples.get(key)!.map(pick));
    const ratioOf = (key: string) => median(ratios.get(key)!);
    context.printTable(
      `Single-row UPDATEs on a ${ROWS.toLocaleString('en')}-row table (pgbench, ${seconds} s per run, ${rounds} rounds; medians, ratios to the wal_level = logical baseline taken within a round)`,
      ['variant', ...WRITER_COUNTS.flatMap((writers) => [`${writers} writer(s) tps`, 'ratio', 'loss']), 'WAL bytes per UPDATE (8 writers)'],
      variants.map((variant) => [
        VARIANT_NAMES[variant],
        ...WRITER_COUNTS.flatMap((writers) => {
          const key = `${variant}/${writers}`;
          return [Math.round(medianOf(key, (sample) => sample.value)), ratioOf(key).toFixed(2), loss(ratioOf(key))];
        }),
        Math.round(medianOf(`${variant}/8`, (sample) => sample.walBytesPerStatement)),
      ]),
    );
    const extra = (variant: Variant) => ratioOf(`${variant}/bulk`) - 1;
    context.printTable(
      `One UPDATE of all ${ROWS.toLocaleString('en')} rows (${rounds * 2} rounds; medians, ratios taken within a round)`,
      ['variant', 'ms', 'ratio to baseline', 'extra time', 'WAL MiB'],
      variants.map((variant) => [
        VARIANT_NAMES[variant],
        Math.round(medianOf(`${variant}/bulk`, (sample) => sample.value)),
        (1 + extra(variant)).toFixed(2),
        `${Math.round(extra(variant) * 100)}%`,
        medianOf(`${variant}/bulk`, (sample) => sample.walBytesPerStatement) / (1024 * 1024),
      ]),
    );
    const met = (ok: boolean) => (ok ? 'yes' : 'no');
    const targeted = variants.filter((variant) => LOSS_TARGETS[variant] !== undefined);
    context.printTable(
      'Targets (issue 4 for the capture alone, issue 16 for the daemon), against the wal_level = logical baseline',
      ['variant', 'loss with 8 writers', 'target', 'met', 'extra time, 100,000-row UPDATE (target ≤ 10%)', 'met'],
      targeted.map((variant) => [
        VARIANT_NAMES[variant],
        loss(ratioOf(`${variant}/8`)),
        `≤ ${Math.round(LOSS_TARGETS[variant]! * 100)}%`,
        met(ratioOf(`${variant}/8`) >= 1 - LOSS_TARGETS[variant]!),
        `${Math.round(extra(variant) * 100)}%`,
        met(extra(variant) <= 0.1),
      ]),
    );
    const workloads = [...WRITER_COUNTS.map((writers) => `${writers}`), 'bulk'];
    const deliveryRows = CONSUMER_VARIANTS.filter((variant) => variants.includes(variant)).flatMap((variant) =>
      workloads.map((workload) => {
        const all = samples.get(`${variant}/${workload}`)!;
        const sum = (pick: (sample: Sample) => number) => all.reduce((total, sample) => total + pick(sample), 0);
        const decoded = variant === 'slot' ? sum((sample) => sample.delivery.duringRun + sample.delivery.leftAtEnd) : null;
        const rowsUpdated = sum((sample) => sample.statements * (workload === 'bulk' ? ROWS : 1));
        const lags = all.flatMap((sample) => (sample.delivery.lagBytesAtEnd === null ? [] : [sample.delivery.lagBytesAtEnd]));
        return [
          VARIANT_NAMES[variant],
          workload === 'bulk' ? `${ROWS.toLocaleString('en')}-row UPDATE` : `${workload} writer(s)`,
          rowsUpdated,
          decoded,
          variant === 'slot' ? sum((sample) => sample.delivery.leftAtEnd) : null,
          lags.length === 0 ? null : Math.round(median(lags) / 1024),
          lags.length === 0 ? null : Math.round(Math.max(...lags) / 1024),
          `${all.filter((sample) => sample.delivery.caughtUp).length} of ${all.length}`,
          Math.round(medianOf(`${variant}/${workload}`, (sample) => sample.delivery.catchUpMs)),
          Math.round(Math.max(...all.map((sample) => sample.delivery.catchUpMs))),
          variant === 'daemonTriggers' ? null : (sum((sample) => sample.delivery.decoderCpuMs) * 1000) / rowsUpdated,
          variant === 'slot' ? null : (sum((sample) => sample.delivery.receiverCpuMs) * 1000) / rowsUpdated,
          variant.startsWith('daemon') ? rowsUpdated / sum((sample) => sample.delivery.steps ?? 0) : null,
        ];
      }),
    );
    context.printTable(
      'Consumers, all rounds (sanity: they kept up). Rows decoded: counted by the SQL consumer; left at the end: what its polls had not reached when the writers stopped; ' +
        "slot lag: WAL between the end and the slot's confirmed position when the writers stopped (the daemon acknowledges only what Redis shows); " +
        'catch-up: after the last commit until the consumer had everything (the daemon: until it reached a barrier sent then); ' +
        'CPU per row updated: of the decoding server process (SQL backend or walsender), and of the receiving client (pg_recvlogical, or the daemon child process); ' +
        'rows per daemon step: a step refreshes its keys from Postgres and merges them in Redis, whatever their number, so its fixed cost is spread over them',
      ['consumer', 'workload', 'rows updated', 'UPDATEs decoded', 'left at the end', 'slot lag KiB at the end, median', 'max', 'caught up', 'catch-up ms, median', 'max', 'decoder CPU µs/row', 'receiver CPU µs/row', 'rows per daemon step'],
      deliveryRows,
    );
  } finally {
    rmSync(scriptDirectory, { recursive: true, force: true });
    await Promise.all(pools.map((pool) => pool.end()));
    await Promise.all(servers.map((server) => server.stop()));
    removeSignalHandlers();
  }
}
