import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { DaemonProcess } from '../integration/daemon/daemonHarness.ts';
import type { PrivateRedisCluster } from '../support/privateRedisTopology.ts';
import type { PrivatePostgres, PrivateRedis } from '../support/privateServers.ts';
import { waitFor } from '../support/waitFor.ts';
import type { SeededRandom } from './seededRandom.ts';

/** Every fault the chaos suite injects. */
export const FAULT_KINDS = ['listenerTerminated', 'postgresRestart', 'redisRestart', 'redisPaused', 'daemonKilled', 'standbyTakeover', 'foreignNotify', 'redisFailover'] as const;
/** One of {@link FAULT_KINDS}. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What the run's Redis is: one private redis-server, or a private Redis Cluster of 3 masters with a replica each. */
export type ChaosRedis = 'single' | 'cluster';

/** The fault kinds that apply to `redis`: restarting or pausing the one server, or failing over a cluster master. */
export function faultKindsFor(redis: ChaosRedis): FaultKind[] {
  const only: FaultKind[] = redis === 'cluster' ? ['redisRestart', 'redisPaused'] : ['redisFailover'];
  return FAULT_KINDS.filter((kind) => !only.includes(kind));
}

/**
 * The daemons of a chaos run: one writer and one standby for the same
 * configuration. Which is which is decided by the writer lease in Redis
 * (its value starts with `<host>:<pid>:`), and can change by itself: after a
 * Redis restart either may take the new lease.
 */
export class ChaosDaemons {
  private readonly live = new Set<DaemonProcess>();
  private closed = false;
  /** Daemons that exited without being killed by the suite (a crash): each is a finding. */
  readonly unexpectedExits: string[] = [];

  constructor(
    private readonly configFile: string,
    private readonly redis: Redis | Cluster,
    private readonly leaseKey: string,
    /** Where each daemon's log and stderr are copied (`daemon-<pid>.log`), for a failed run's post-mortem; none by default. */
    private readonly logDir?: string,
  ) {
    if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
  }

  /** Starts daemons until two run (the writer and a standby); none once closed. */
  startMissing(): void {
    while (!this.closed && this.live.size < 2) this.startOne();
  }

  /**
   * {@link startMissing}, resolving once every daemon it started is running
   * its own code (it logged `starting`). A node process with tsx takes
   * seconds to load the daemon, and up to a minute on a loaded 2-core
   * machine: that is not the daemon's recovery.
   */
  async startMissingAndWait(timeoutMs = 120_000): Promise<void> {
    const before = new Set(this.live);
    this.startMissing();
    for (const daemon of this.live) if (!before.has(daemon)) await daemon.waitForLog('starting', 1, timeoutMs);
  }

  /** SIGKILLs every daemon, for good: a fault still in flight cannot start new ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.killAll();
  }

  /** SIGKILLs the daemon holding the lease (waiting up to `timeoutMs` for the lease to name one); the standby is left to take over. */
  async killWriter(timeoutMs = 20_000): Promise<void> {
    const writer = await waitFor('a daemon to hold the writer lease', () => this.writer(), { timeoutMs, intervalMs: 50 });
    await this.kill(writer);
  }

  /** SIGKILLs every daemon. */
  async killAll(): Promise<void> {
    await Promise.all([...this.live].map((daemon) => this.kill(daemon)));
  }

  private async writer(): Promise<DaemonProcess | undefined> {
    const holder = await this.redis.get(this.leaseKey).catch(() => null);
    if (holder === null) return undefined;
    return [...this.live].find((daemon) => holder.split(':')[1] === String(daemon.child.pid));
  }

  private startOne(): void {
    const daemon = DaemonProcess.start(this.configFile);
    this.live.add(daemon);
    if (this.logDir !== undefined) {
      const file = path.join(this.logDir, `daemon-${daemon.child.pid}.log`);
      for (const stream of [daemon.child.stdout!, daemon.child.stderr!]) stream.on('data', (chunk: Buffer) => appendFileSync(file, chunk));
    }
    void daemon.waitForExit().then((code) => {
      if (!this.live.delete(daemon)) return;
      this.unexpectedExits.push(`daemon ${daemon.child.pid} exited with ${code}: ${daemon.stderrText.slice(-500)}`);
    });
  }

  private async kill(daemon: DaemonProcess): Promise<void> {
    this.live.delete(daemon);
    await daemon.stop('SIGKILL');
  }
}

/** What a fault needs to reach. */
export interface FaultTargets {
  readonly postgres: PrivatePostgres;
  /** The one redis-server (`redisRestart`, `redisPaused`), or the cluster (`redisFailover`). */
  readonly redis: PrivateRedis | PrivateRedisCluster;
  /** A key of each cached table: `redisFailover` kills the master of one of their slots. */
  readonly tableKeys: readonly string[];
  readonly daemons: ChaosDaemons;
  /** The daemon's NOTIFY channel, for the foreign client's payloads. */
  readonly channel: string;
  readonly random: SeededRandom;
}

/**
 * Injects one fault and resolves once the fault is over: the server is back,
 * the killed daemon restarted, the pause elapsed, the payloads sent. From
 * then on the daemon is expected to recover by itself.
 */
export async function injectFault(kind: FaultKind, targets: FaultTargets): Promise<void> {
  switch (kind) {
    case 'listenerTerminated':
      await withForeignClient(targets.postgres.url, (client) => client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ('tablecache-listener', 'tablecache-logical')`));
      return;
    case 'postgresRestart':
      // Immediate: like a crash (every connection cut, WAL recovery at start).
      await targets.postgres.restart('immediate');
      return;
    case 'redisRestart':
      await singleRedis(targets).restart();
      return;
    case 'redisPaused': {
      const ms = targets.random.int(2_000, 4_000);
      await singleRedis(targets).pause(ms);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return;
    }
    case 'daemonKilled':
      await targets.daemons.killAll();
      await targets.daemons.startMissingAndWait();
      return;
    case 'standbyTakeover':
      await targets.daemons.killWriter();
      return;
    case 'redisFailover': {
      // SIGKILL the master of a table's slot; once its replica took over, the old master rejoins as a replica (empty),
      // so the next failover has a replica to promote.
      const cluster = targets.redis as PrivateRedisCluster;
      const { killedPort } = await cluster.killMasterOf(targets.tableKeys[targets.random.int(0, targets.tableKeys.length - 1)]!);
      await cluster.restart(killedPort);
      return;
    }
    case 'foreignNotify':
      await withForeignClient(targets.postgres.url, async (client) => {
        for (const payload of foreignPayloads(targets.random)) await client.query('SELECT pg_notify($1, $2)', [targets.channel, payload]);
      });
      return;
  }
}

function singleRedis(targets: FaultTargets): PrivateRedis {
  if (!('pause' in targets.redis)) throw new Error('redisRestart and redisPaused need a single Redis: run the chaos suite without --redis cluster.');
  return targets.redis;
}

/** Just under Postgres's NOTIFY limit of 8000 bytes. */
const NEAR_LIMIT_BYTES = 7_990;

/**
 * Payloads no trigger sends, from a client that is not the triggers: short
 * garbage, 7,990 bytes of garbage, JSON of a wrong version, and JSON of the
 * right shape with thousands of keys (for a table the config does not know,
 * and as a change of keys that do not exist).
 */
export function foreignPayloads(random: SeededRandom): string[] {
  const garbage = Array.from({ length: NEAR_LIMIT_BYTES }, () => String.fromCharCode(random.int(33, 126))).join('');
  const head = { v: 1, op: 'U', t: 'app.users', xid: '1', ts: Date.now(), c: ['user_id'] };
  return [
    'garbage',
    '{',
    '{"v":1}',
    'null',
    garbage,
    JSON.stringify({ ...head, v: 99, k: [[1]] }),
    fillJson((i) => `"x${i}":${i}`, `{"v":1,"op":"U","t":"app.nowhere","xid":"1","ts":0,"c":["id"],"k":[[1]],`, '}'),
    fillJson((i) => `[${-1 - i}]`, `${JSON.stringify(head).slice(0, -1)},"k":[`, ']}'),
  ];
}

/** `open` + as many `item(i)` as fit under {@link NEAR_LIMIT_BYTES}, comma-separated, + `close`. */
function fillJson(item: (i: number) => string, open: string, close: string): string {
  const items: string[] = [];
  let length = open.length + close.length;
  for (let i = 0; length + item(i).length + 1 < NEAR_LIMIT_BYTES; i++) {
    items.push(item(i));
    length += item(i).length + 1;
  }
  return open + items.join(',') + close;
}

async function withForeignClient<T>(url: string, action: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'tablecache-chaos-foreign' });
  client.on('error', () => {});
  await client.connect();
  try {
    return await action(client);
  } finally {
    await client.end().catch(() => {});
  }
}
