/**
 * The daemon's CPU per update on the logical slot (issue 16's write cost),
 * in isolation: the focused harness behind logicalDecoding.bench.ts' daemon
 * rows. One private cluster at `wal_level = logical`, the bench table with a
 * publication and a `pgoutput` slot, and the daemon as a child process
 * (bench/daemonConsumer.ts) caching it in Redis, while pgbench runs 8
 * writers of single-row UPDATEs, paced (`-R`: the same work in every run, so
 * that CPU per update compares across code changes) and unpaced (then the
 * loss against no slot and no daemon, alternated within each round).
 *
 * TABLECACHE_BENCH_SECONDS per pgbench run (default 6),
 * TABLECACHE_BENCH_ROUNDS (default 2), TABLECACHE_BENCH_RATES (comma-separated
 * paced rates in updates/s, `max` for unpaced; default `2000,max`),
 * TABLECACHE_BENCH_WINDOWS (the daemon's batchWindowMs values, default `0`)
 * TABLECACHE_BENCH_DAEMON_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`)
 * and TABLECACHE_BENCH_COMPARE_WITH (the root of another checkout, e.g. a
 * `git worktree` of the commit before a change: its daemon runs too,
 * alternated with this one's in every round, so that before and after share
 * the machine's load).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PrivatePostgres } from '../test/support/privateServers.ts';
import type { BenchContext } from './benchContext.ts';
import { median } from './benchTable.ts';
import { startDaemonConsumer } from './daemonConsumer.ts';
import { runPgbench } from './pgbench.ts';

const ROWS = 100_000;
const WRITERS = 8;
const SLOT = 'tc_cpu';
const PUBLICATION = 'tc_cpu';
const CHANNEL = 'tablecache_changes';
const SERVER_SETTINGS = { fsync: 'on', synchronous_commit: 'on', shared_buffers: '128MB', max_wal_size: '1GB', wal_level: 'logical', max_replication_slots: 4, max_wal_senders: 4 } as const;

function settings() {
  const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((item) => item.trim()).filter((item) => item !== '');
  return {
    seconds: Number(process.env.TABLECACHE_BENCH_SECONDS ?? 6),
    rounds: Number(process.env.TABLECACHE_BENCH_ROUNDS ?? 2),
    rates: list('TABLECACHE_BENCH_RATES', '2000,max').map((rate) => (rate === 'max' ? null : Number(rate))),
    windows: list('TABLECACHE_BENCH_WINDOWS', '0').map(Number),
    nodeArgs: process.env.TABLECACHE_BENCH_DAEMON_NODE_ARGS?.split(' ').filter((arg) => arg !== '') ?? [],
    checkouts: [
      { name: 'this checkout', main: undefined },
      ...(process.env.TABLECACHE_BENCH_COMPARE_WITH ? [{ name: process.env.TABLECACHE_BENCH_COMPARE_WITH, main: path.join(process.env.TABLECACHE_BENCH_COMPARE_WITH, 'bench', 'daemonProcess.ts') }] : []),
    ],
  };
}

/** One daemon run: the writers' rate and what the daemon spent on it. */
interface DaemonSample {
  readonly tps: number;
  readonly updates: number;
  readonly daemonCpuMs: number;
  readonly walsenderCpuMs: number;
  readonly steps: number;
  readonly catchUpMs: number;
}

/** Measures and prints the table (see the file comment). */
export async function run(context: BenchContext): Promise<void> {
  const { seconds, rounds, rates, windows, nodeArgs, checkouts } = settings();
  const server = await PrivatePostgres.start(SERVER_SETTINGS);
  const pool = new pg.Pool({ connectionString: server.url, max: 2 });
  const scriptDirectory = mkdtempSync(path.join(tmpdir(), 'tablecache-bench-'));
  try {
    await pool.query(`
      CREATE TABLE bench_users (user_id integer PRIMARY KEY, name text NOT NULL, counter integer NOT NULL DEFAULT 0);
      INSERT INTO bench_users (user_id, name) SELECT g, 'user ' || g FROM generate_series(1, ${ROWS}) AS g;`);
    await pool.query('VACUUM ANALYZE bench_users');
    await pool.query(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE bench_users`);
    const script = path.join(scriptDirectory, 'update.sql');
    writeFileSync(script, `\\set id random(1, ${ROWS})\nUPDATE bench_users SET counter = counter + 1 WHERE user_id = :id;\n`);
    await runPgbench(server.url, script, WRITERS, 3);

    const dropSlot = () => pool.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
    const baseline = new Map<string, number[]>();
    const samples = new Map<string, DaemonSample[]>();
    const record = <T>(map: Map<string, T[]>, key: string, value: T) => map.set(key, [...(map.get(key) ?? []), value]);
    for (let round = 0; round < rounds; round++) {
      context.note(`round ${round + 1} of ${rounds}`);
      for (const rate of rates) {
        const rateName = rate === null ? 'max' : String(rate);
        if (rate === null) {
          await dropSlot();
          await pool.query('VACUUM bench_users');
          record(baseline, rateName, (await runPgbench(server.url, script, WRITERS, seconds)).tps);
        }
        for (const windowMs of windows) for (const checkout of round % 2 === 0 ? checkouts : [...checkouts].reverse()) {
          await dropSlot();
          await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [SLOT]);
          await pool.query('VACUUM bench_users');
          const consumer = await startDaemonConsumer({
            capture: 'logical',
            batchWindowMs: windowMs,
            url: server.url,
            pool,
            redisUrl: context.redisUrl,
            triggerSchema: 'tablecache',
            channel: CHANNEL,
            slot: SLOT,
            publication: PUBLICATION,
            sourceTable: 'public.bench_users',
            keyColumn: 'user_id',
            nodeArgs,
            daemonMain: checkout.main,
          });
          const { tps, transactions } = await runPgbench(server.url, script, WRITERS, seconds, rate ?? undefined);
          const delivery = await consumer.stop();
          record(samples, `${checkout.name}/${windowMs}/${rateName}`, {
            tps,
            updates: transactions,
            daemonCpuMs: delivery.receiverCpuMs,
            walsenderCpuMs: delivery.decoderCpuMs,
            steps: delivery.steps ?? 0,
            catchUpMs: delivery.catchUpMs,
          });
        }
      }
    }
    await dropSlot();
    const rows = checkouts.flatMap((checkout) => windows.flatMap((windowMs) =>
      rates.map((rate) => {
        const rateName = rate === null ? 'max' : String(rate);
        const all = samples.get(`${checkout.name}/${windowMs}/${rateName}`)!;
        const sum = (pick: (sample: DaemonSample) => number) => all.reduce((total, sample) => total + pick(sample), 0);
        const tps = median(all.map((sample) => sample.tps));
        const base = rate === null ? median(baseline.get(rateName)!) : null;
        return [
          checkout.name,
          windowMs,
          rate === null ? 'unpaced' : rate,
          Math.round(tps),
          base === null ? null : Math.round(base),
          base === null ? null : `${Math.round((1 - tps / base) * 100)}%`,
          (sum((sample) => sample.daemonCpuMs) * 1000) / sum((sample) => sample.updates),
          (sum((sample) => sample.walsenderCpuMs) * 1000) / sum((sample) => sample.updates),
          sum((sample) => sample.updates) / sum((sample) => sample.steps),
          Math.round(median(all.map((sample) => sample.catchUpMs))),
        ];
      }),
    ));
    context.printTable(
      `The daemon on the slot, ${WRITERS} pgbench writers, ${seconds} s per run, ${rounds} rounds (sums over rounds; tps and loss: medians, the baseline has no slot and no daemon)`,
      ['daemon', 'batchWindowMs', 'rate', 'tps', 'baseline tps', 'loss', 'daemon CPU µs/update', 'walsender CPU µs/update', 'rows per step', 'catch-up ms'],
      rows,
    );
  } finally {
    rmSync(scriptDirectory, { recursive: true, force: true });
    await pool.end();
    await server.stop();
  }
}
