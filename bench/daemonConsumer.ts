/**
 * The consumers of logicalDecoding.bench.ts' changes, and the tablecache
 * daemon among them: a child process (bench/daemonProcess.ts, as the `daemon`
 * bench runs it) caching the bench table in Redis, in either capture mode.
 * What it reports is what the write-cost bench needs beside the writers'
 * throughput: that the daemon kept up (the slot's lag when the writers
 * stopped, and how long until a barrier sent then was reached) and its CPU.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { waitForBarrier } from '../lib/client/barrier.ts';
import { sendBarrier } from '../lib/postgres/barrier.ts';
import { startDaemon } from './daemon.bench.ts';
import { elapsedMs } from './benchTable.ts';
import { deleteKeys } from './redisLoad.bench.ts';

/**
 * What a consumer saw: UPDATEs decoded (or notifications) while the writers
 * ran and after they stopped, and how long after the last commit it had
 * everything (`caughtUp` false if it never did within the deadline).
 */
export interface Delivery {
  readonly duringRun: number;
  readonly leftAtEnd: number;
  readonly catchUpMs: number;
  readonly caughtUp: boolean;
  /** CPU time of the server process that decoded (the SQL session's backend, or the walsender). */
  readonly decoderCpuMs: number;
  /** CPU time of the client process that received the stream (pg_recvlogical, the daemon), 0 for the SQL consumer. */
  readonly receiverCpuMs: number;
  /** Bytes of WAL between the end and the slot's confirmed position when the writers stopped (the daemon on the slot), else null. */
  readonly lagBytesAtEnd: number | null;
  /** The daemon's steps until it reached the barrier (each one refresh and one merge in Redis), else null. */
  readonly steps: number | null;
}

/** A running consumer of one variant's changes. */
export interface Consumer {
  stop(): Promise<Delivery>;
}

/** Kernel clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** User plus system CPU time of process `pid` so far, from /proc (the clusters and the daemon run on this machine). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Where the daemon consumer runs and what it consumes. */
export interface DaemonConsumerOptions {
  readonly capture: 'triggers' | 'logical';
  /** The daemon's `batchWindowMs` (0: a step as soon as a change arrives). */
  readonly batchWindowMs: number;
  /** The bench cluster's database (the daemon's source and the barrier's session). */
  readonly url: string;
  readonly pool: pg.Pool;
  readonly redisUrl: string;
  /** The trigger schema and channel (the channel is also the prefix of the logical messages). */
  readonly triggerSchema: string;
  readonly channel: string;
  readonly slot: string;
  readonly publication: string;
  /** The cached table: its source table (schema-qualified) and key column. */
  readonly sourceTable: string;
  readonly keyColumn: string;
  /** Node options of the child, before the script (`TABLECACHE_BENCH_DAEMON_NODE_ARGS`, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
  readonly nodeArgs: readonly string[];
  /** The daemon's entry script, when not this checkout's bench/daemonProcess.ts (a comparison with another checkout). */
  readonly daemonMain?: string;
}

/** How long the daemon may take to reach a barrier sent when the writers stopped before the run counts as not caught up. */
const CATCH_UP_TIMEOUT_MS = 60_000;

function writeDaemonConfig(options: DaemonConsumerOptions, keyPrefix: string): { file: string; remove(): void } {
  const directory = mkdtempSync(path.join(tmpdir(), 'tc-bench-capture-'));
  const file = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: options.url },
    redis: { url: options.redisUrl, keyPrefix },
    triggers: { schema: options.triggerSchema, channel: options.channel },
    capture: { method: options.capture, slot: options.slot, publication: options.publication },
    // Port 0: no clash with another daemon on the machine. No reload throttle:
    // the bulk UPDATE's catch-up then measures the reload, not the throttle's wait.
    daemon: { http: { port: 0 }, batchWindowMs: options.batchWindowMs, minReloadIntervalMs: 0, logLevel: 'warn' },
    tables: {
      bench: {
        query: `SELECT * FROM ${options.sourceTable}`,
        primaryKey: options.keyColumn,
        sources: { [options.sourceTable]: { key: options.keyColumn } },
      },
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  return { file, remove: () => rmSync(directory, { recursive: true, force: true }) };
}

async function slotActivePid(pool: pg.Pool, slot: string): Promise<number | null> {
  const { rows } = await pool.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return rows[0]?.pid ?? null;
}

/**
 * Starts the daemon (the capture must be installed: the triggers, or the
 * publication and slot) and waits until it has loaded the table; CPU times
 * count from then. `stop` first reads the slot's lag (logical), then sends a
 * barrier and times the daemon reaching it, then stops the daemon and
 * deletes its keys.
 */
export async function startDaemonConsumer(options: DaemonConsumerOptions): Promise<Consumer> {
  const keyPrefix = `tcbench:capture:${randomBytes(4).toString('hex')}:`;
  const config = writeDaemonConfig(options, keyPrefix);
  const redis = new Redis(options.redisUrl);
  try {
    const daemon = await startDaemon(config.file, options.nodeArgs, options.daemonMain);
    const walsender = options.capture === 'logical' ? await slotActivePid(options.pool, options.slot) : null;
    await daemon.stepStats(); // only the steps from here on count
    const daemonCpuAtStart = processCpuMs(daemon.pid);
    const walsenderCpuAtStart = walsender === null ? 0 : processCpuMs(walsender);
    return {
      async stop() {
        try {
          const lagBytesAtEnd =
            options.capture === 'logical'
              ? Number(
                  (
                    await options.pool.query<{ bytes: string }>(
                      'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) AS bytes FROM pg_replication_slots WHERE slot_name = $1',
                      [options.slot],
                    )
                  ).rows[0]!.bytes,
                )
              : null;
          const start = performance.now();
          const id = await sendBarrier(options.pool, { channel: options.channel, method: options.capture });
          const caughtUp = await waitForBarrier(redis, id, { keyPrefix, timeoutMs: CATCH_UP_TIMEOUT_MS }).then(
            () => true,
            () => false,
          );
          const catchUpMs = elapsedMs(start);
          const steps = (await daemon.stepStats()).tickMs.length;
          // The walsender is the one that streamed the run only if the daemon never reconnected; a new one's CPU is not comparable.
          const sameWalsender = walsender !== null && (await slotActivePid(options.pool, options.slot)) === walsender;
          return {
            duringRun: 0,
            leftAtEnd: 0,
            catchUpMs,
            caughtUp,
            decoderCpuMs: sameWalsender ? processCpuMs(walsender) - walsenderCpuAtStart : 0,
            receiverCpuMs: processCpuMs(daemon.pid) - daemonCpuAtStart,
            lagBytesAtEnd,
            steps,
          };
        } finally {
          await daemon.stop();
          await deleteKeys(redis, `*${keyPrefix}*`);
          redis.disconnect();
          config.remove();
        }
      },
    };
  } catch (error) {
    redis.disconnect();
    config.remove();
    throw error;
  }
}
