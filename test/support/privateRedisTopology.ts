import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './privateServers.ts';
import type { TestCertificates } from './tlsRedis.ts';
import { waitFor } from './waitFor.ts';

/**
 * A Redis Cluster and a Sentinel-watched primary with replicas of a test
 * file's own: real `redis-server` processes on free ports in a temporary
 * directory, always removed by `stop()` (call it in afterAll). Failover is
 * the servers' own (cluster-node-timeout, sentinel down-after-milliseconds),
 * never a `CLUSTER FAILOVER` or `SENTINEL FAILOVER` that a crash would not send.
 */

const run = promisify(execFile);

/** How long a topology may take to settle (start, failover, rejoin) under the load of a full test run. */
const SETTLE_TIMEOUT_MS = 60_000;

/** How the test's own connections reach a node: its password, and the CA to trust when the nodes speak only TLS. */
interface NodeLogin {
  readonly password: string | undefined;
  readonly ca?: Buffer | undefined;
}

/**
 * The CA of every private server of this file that speaks only TLS, by port
 * (a Sentinel set-up's data nodes and sentinels): {@link ask} reaches them
 * over TLS whatever login its caller passes. freePort never hands a port out
 * twice in a process, so an entry needs no removal.
 */
const tlsOnlyPorts = new Map<number, Buffer>();

/** Runs one command on 127.0.0.1:`port` with a short-lived connection that never retries. */
async function ask(port: number, login: NodeLogin | string | undefined, ...command: string[]): Promise<unknown> {
  const { password, ca = tlsOnlyPorts.get(port) } = typeof login === 'object' ? login : { password: login, ca: undefined };
  const redis = new Redis(port, '127.0.0.1', {
    password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2_000, ...(ca === undefined ? {} : { tls: { ca } }),
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const [name, ...args] = command as [string, ...string[]];
    return await redis.call(name, ...args);
  } finally {
    redis.disconnect();
  }
}

/** `INFO`-style `field:value` lines as a record. */
function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** One redis-server process that can be SIGKILLed and started again with the same arguments (and directory). */
class ServerProcess {
  private process: ChildProcess | undefined;
  private output = '';

  constructor(
    readonly port: number,
    private readonly args: readonly string[],
    private readonly cwd: string,
  ) {}

  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Spawns the server and resolves once it logs that it accepts connections. */
  async start(): Promise<void> {
    this.output = '';
    const server = spawn('redis-server', [...this.args], { cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = server;
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-4_000);
    };
    server.stdout?.on('data', collect);
    server.stderr?.on('data', collect);
    const ready = waitFor(`redis-server on port ${this.port} to accept connections`, () => /Ready to accept connections|Sentinel ID is/.test(this.output), {
      timeoutMs: SETTLE_TIMEOUT_MS,
    });
    // A server that exits while starting fails the start at once, with its last words, instead of after the timeout.
    ready.catch(() => {});
    let onExit!: () => void;
    const exited = new Promise<never>((_, reject) => {
      onExit = () => reject(new Error(`redis-server on port ${this.port} exited while starting: ${this.output.slice(-1_500)}`));
      server.once('exit', onExit);
    });
    try {
      await Promise.race([ready, exited]);
    } finally {
      server.off('exit', onExit);
    }
  }

  /** SIGKILL, like a crash: no shutdown, no last save. */
  async kill(): Promise<void> {
    const server = this.process;
    if (server === undefined || !this.running) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  }
}

/** Options of {@link PrivateRedisCluster.start}. */
export interface PrivateRedisClusterOptions {
  readonly masters?: number;
  readonly replicasPerMaster?: number;
  /** `cluster-node-timeout`: how long a silent master goes unanswered before its replica takes over. */
  readonly nodeTimeoutMs?: number;
  /** `requirepass` and `masterauth` on every node. */
  readonly password?: string;
  /** Speak only TLS with these certificates: clients, the cluster bus and replication (`--tls-cluster`, `--tls-replication`). */
  readonly tls?: TestCertificates;
}

/** One node of a {@link PrivateRedisCluster} as CLUSTER NODES reports it. */
export interface ClusterNodeView {
  readonly id: string;
  readonly port: number;
  readonly role: 'master' | 'replica';
  readonly failed: boolean;
}

/**
 * A Redis Cluster of `masters` masters with `replicasPerMaster` replicas each,
 * built with `redis-cli --cluster create`. The cluster bus of every node gets
 * its own free port (`cluster-port`), not port + 10000.
 */
export class PrivateRedisCluster {
  private stopped = false;

  private constructor(
    private readonly directory: string,
    private readonly servers: readonly ServerProcess[],
    private readonly login: NodeLogin,
  ) {}

  /** Starts the nodes, creates the cluster, and resolves once every node reports cluster_state:ok with all 16384 slots covered. */
  static async start(options: PrivateRedisClusterOptions = {}): Promise<PrivateRedisCluster> {
    const { masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 2_000, password, tls } = options;
    const directory = mkdtempSync(path.join(tmpdir(), 'tc-private-cluster-'));
    const servers: ServerProcess[] = [];
    const cluster = new PrivateRedisCluster(directory, servers, { password, ca: tls === undefined ? undefined : readFileSync(tls.caFile) });
    const tlsArgs = tls === undefined ? [] : [
      '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile,
      '--tls-auth-clients', 'no', '--tls-cluster', 'yes', '--tls-replication', 'yes',
    ];
    try {
      for (let index = 0; index < masters * (1 + replicasPerMaster); index++) {
        const [port, busPort] = [await freePort(), await freePort()];
        const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
        const ports = tls === undefined ? ['--port', String(port)] : ['--port', '0', '--tls-port', String(port)];
        const args = [
          ...ports, ...tlsArgs, '--cluster-port', String(busPort), '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(nodeTimeoutMs),
          // A replica takes over however long it was cut off: a test's replica is never too stale to serve.
          '--cluster-replica-validity-factor', '0', '--save', '', '--appendonly', 'no', '--dir', directory, ...auth,
        ];
        servers.push(new ServerProcess(port, args, directory));
      }
      await Promise.all(servers.map((server) => server.start()));
      const auth = [...(password === undefined ? [] : ['-a', password, '--no-auth-warning']), ...(tls === undefined ? [] : ['--tls', '--cacert', tls.caFile])];
      const addresses = servers.map((server) => `127.0.0.1:${server.port}`);
      await run('redis-cli', [...auth, '--cluster', 'create', ...addresses, '--cluster-replicas', String(replicasPerMaster), '--cluster-yes']);
      await cluster.waitUntilHealthy();
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** The seed URLs of every node (running or not), for `redis.cluster.nodes`: `rediss://` when the nodes speak TLS. */
  get nodeUrls(): string[] {
    return this.servers.map((server) => `${this.login.ca === undefined ? 'redis' : 'rediss'}://127.0.0.1:${server.port}`);
  }

  /** The ports of every node. */
  get ports(): number[] {
    return this.servers.map((server) => server.port);
  }

  /** The slot of `key` (its hash tag honoured), as the cluster computes it. */
  async slotOf(key: string): Promise<number> {
    return Number(await ask(this.anyRunning().port, this.login, 'CLUSTER', 'KEYSLOT', key));
  }

  /** The port of the master that serves `key`'s slot now, as a running node sees it. */
  async masterPortOf(key: string): Promise<number> {
    const slot = await this.slotOf(key);
    const ranges = (await ask(this.anyRunning().port, this.login, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
    const range = ranges.find(([from, to]) => from <= slot && slot <= to);
    if (range === undefined) throw new Error(`No node serves slot ${slot}.`);
    return Number(range[2][1]);
  }

  /** Every node as the running node on `port` (default: any) sees the cluster. */
  async nodes(port = this.anyRunning().port): Promise<ClusterNodeView[]> {
    const text = String(await ask(port, this.login, 'CLUSTER', 'NODES'));
    return text.trim().split('\n').map((line) => {
      const [id = '', address = '', flags = ''] = line.split(' ');
      const flagList = flags.split(',');
      return { id, port: Number(address.split('@')[0]?.split(':')[1]), role: flagList.includes('master') ? 'master' : 'replica', failed: flagList.includes('fail') || flagList.includes('fail?') };
    });
  }

  /**
   * SIGKILLs the master serving `key`'s slot and waits until a replica of it
   * serves the slot and every running node reports the cluster healthy again.
   * Returns the killed port and the promoted one.
   */
  async killMasterOf(key: string): Promise<{ killedPort: number; promotedPort: number }> {
    const killedPort = await this.masterPortOf(key);
    await this.server(killedPort).kill();
    const promotedPort = await waitFor(`a replica to take over the slot of ${key} from killed master ${killedPort}`, async () => {
      const port = await this.masterPortOf(key);
      return port !== killedPort ? port : undefined;
    }, { timeoutMs: SETTLE_TIMEOUT_MS });
    await this.waitUntilHealthy();
    return { killedPort, promotedPort };
  }

  /** SIGKILLs the node on `port` (no wait for a failover: see {@link killMasterOf}). */
  async kill(port: number): Promise<void> {
    await this.server(port).kill();
  }

  /**
   * Starts the killed node on `port` again with its nodes.conf (its data is
   * gone: no persistence); a former master rejoins as a replica of the node
   * that took its slots. Resolves once no running node marks any node failed.
   */
  async restart(port: number): Promise<void> {
    await this.server(port).start();
    await waitFor(`node ${port} to rejoin the cluster`, async () => {
      for (const server of this.servers.filter((s) => s.running)) {
        if ((await this.nodes(server.port)).some((node) => node.failed)) return false;
      }
      return true;
    }, { timeoutMs: SETTLE_TIMEOUT_MS });
    await this.waitUntilHealthy();
  }

  /**
   * Resolves once every running node reports cluster_state:ok with all 16384
   * slots ok, every running node agrees on each running node's role and marks
   * none of them failed, and every running replica's link to its master is up
   * (so a write acknowledged by WAIT survives a failover).
   */
  async waitUntilHealthy(): Promise<void> {
    await waitFor('every running cluster node to report cluster_state:ok, all slots covered, and linked replicas', async () => {
      const running = this.servers.filter((s) => s.running);
      const roles = new Map<number, string>();
      for (const server of running) {
        const info = parseFields(String(await ask(server.port, this.login, 'CLUSTER', 'INFO')));
        if (info['cluster_state'] !== 'ok' || info['cluster_slots_ok'] !== '16384') return false;
        for (const node of (await this.nodes(server.port)).filter((n) => running.some((s) => s.port === n.port))) {
          if (node.failed || (roles.get(node.port) ?? node.role) !== node.role) return false;
          roles.set(node.port, node.role);
        }
      }
      for (const server of running.filter((s) => roles.get(s.port) === 'replica')) {
        const replication = parseFields(String(await ask(server.port, this.login, 'INFO', 'replication')));
        if (replication['master_link_status'] !== 'up') return false;
      }
      return true;
    }, { timeoutMs: SETTLE_TIMEOUT_MS });
  }

  /** Kills every node and removes the directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.servers.map((server) => server.kill()));
    rmSync(this.directory, { recursive: true, force: true });
  }

  private server(port: number): ServerProcess {
    const server = this.servers.find((s) => s.port === port);
    if (server === undefined) throw new Error(`No cluster node on port ${port}.`);
    return server;
  }

  private anyRunning(): ServerProcess {
    const server = this.servers.find((s) => s.running);
    if (server === undefined) throw new Error('No cluster node is running.');
    return server;
  }
}

/** Options of {@link PrivateRedisSentinel.start}. */
export interface PrivateRedisSentinelOptions {
  /** Replicas of the primary: 1 or 2. */
  readonly replicas?: number;
  /** The master name the sentinels monitor. */
  readonly name?: string;
  /** `requirepass`/`masterauth` on the data nodes (the sentinels get `sentinel auth-pass`). */
  readonly password?: string;
  /**
   * Data nodes and sentinels speak only TLS with these certificates
   * (`port 0`, `tls-port`), replication and the sentinels' own connections
   * too (`tls-replication yes`); {@link PrivateRedisSentinel.sentinelUrls} are `rediss://`.
   */
  readonly tls?: TestCertificates;
}

/**
 * `down-after-milliseconds` of the sentinels: how long an instance may leave
 * a PING unanswered before a sentinel deems it down. Right after a failover
 * it is also how long the promoted node has to answer a sentinel's first
 * PING, counted from the sentinel's switch (a switch resets the master's link
 * timers), and during that time the other sentinels' replies that the killed
 * primary was down (kept for 5 s) still count towards the quorum: one
 * sentinel that sees no answer in time fails the healthy new primary over
 * at once. On a loaded 2-core machine such first answers took up to 2 s,
 * so 1000 ms failed promoted replicas over; 3 s leaves room for them, at the
 * price of 2 s more to notice a killed primary.
 */
const DOWN_AFTER_MS = 3_000;

/**
 * How long a sentinel stays in TILT mode (`SENTINEL DEBUG tilt-period`,
 * Redis 7.0+; 30 s by default). A sentinel whose timer ran more than 2 s late
 * (a process stalled on a loaded machine) stops acting, and answers that no
 * master is down, until this much time has passed without another such
 * stall: two sentinels in TILT held a killed primary's failover back for
 * 40 s, and a stall during TILT starts it again, past the set-up's deadline.
 * After 5 s (a ping period and down-after-milliseconds) a sentinel's view of
 * every instance is fresh again, which is what TILT waits for.
 */
const TILT_PERIOD_MS = 5_000;

/**
 * A primary with replicas and three sentinels (quorum 2) watching it, with
 * small down-after-milliseconds and failover-timeout so a killed primary is
 * replaced within seconds.
 */
export class PrivateRedisSentinel {
  private stopped = false;

  private constructor(
    readonly name: string,
    private readonly directory: string,
    private readonly dataNodes: readonly ServerProcess[],
    private readonly sentinels: readonly ServerProcess[],
    private readonly password: string | undefined,
    private readonly tls: TestCertificates | undefined,
  ) {}

  /** Starts the primary, its replicas and three sentinels; resolves once every sentinel sees the primary, every replica and the other sentinels. */
  static async start(options: PrivateRedisSentinelOptions = {}): Promise<PrivateRedisSentinel> {
    const { replicas = 2, name = 'tcprimary', password, tls } = options;
    const directory = mkdtempSync(path.join(tmpdir(), 'tc-private-sentinel-'));
    const dataNodes: ServerProcess[] = [];
    const sentinels: ServerProcess[] = [];
    const topology = new PrivateRedisSentinel(name, directory, dataNodes, sentinels, password, tls);
    try {
      const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
      const primaryPort = await freePort();
      for (let index = 0; index <= replicas; index++) {
        const port = index === 0 ? primaryPort : await freePort();
        const replicaOf = index === 0 ? [] : ['--replicaof', '127.0.0.1', String(primaryPort)];
        const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory, ...auth, ...replicaOf, ...tlsOnly(port, tls).flatMap((line) => `--${line}`.split(' '))];
        dataNodes.push(new ServerProcess(port, args, directory));
      }
      await Promise.all(dataNodes.map((node) => node.start()));
      for (let index = 0; index < 3; index++) {
        const port = await freePort();
        // Sentinels rewrite their config file: each gets a file of its own.
        const file = path.join(directory, `sentinel-${port}.conf`);
        const lines = [
          `port ${port}`, 'bind 127.0.0.1', `dir ${directory}`,
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${name} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${name} 3000`,
          ...(password === undefined ? [] : [`sentinel auth-pass ${name} ${password}`]),
          ...tlsOnly(port, tls),
        ];
        writeFileSync(file, `${lines.join('\n')}\n`);
        sentinels.push(new ServerProcess(port, [file, '--sentinel'], directory));
      }
      await Promise.all(sentinels.map(async (sentinel) => {
        await sentinel.start();
        await ask(sentinel.port, undefined, 'SENTINEL', 'DEBUG', 'tilt-period', String(TILT_PERIOD_MS));
      }));
      await topology.waitUntilSettled({ primaryPort });
      return topology;
    } catch (error) {
      await topology.stop();
      throw error;
    }
  }

  /** The sentinels' URLs, for `redis.sentinel.sentinels`: `rediss://` when they speak TLS. */
  get sentinelUrls(): string[] {
    return this.sentinels.map((sentinel) => `${this.tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${sentinel.port}`);
  }

  /** The data nodes' ports (the first started as primary). */
  get dataPorts(): number[] {
    return this.dataNodes.map((node) => node.port);
  }

  /** The primary's port as the first running sentinel reports it. */
  async primaryPort(): Promise<number> {
    const sentinel = this.sentinels.find((s) => s.running);
    if (sentinel === undefined) throw new Error('No sentinel is running.');
    const [, port] = (await ask(sentinel.port, undefined, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as [string, string];
    return Number(port);
  }

  /**
   * SIGKILLs the primary and waits until every sentinel names the same other
   * data node as primary and that node answers ROLE master. Returns the
   * killed port and the promoted one (the one the sentinels settled on).
   */
  async killPrimary(): Promise<{ killedPort: number; promotedPort: number }> {
    const killedPort = await this.primaryPort();
    await this.dataNode(killedPort).kill();
    // Not the first replica a sentinel names: Sentinel promises only that the
    // newest failover (highest config epoch) wins, and a promoted replica can
    // be failed over in turn (see DOWN_AFTER_MS), then made a replica again.
    // The other replicas follow the new primary when the sentinels get to it: not awaited.
    const promotedPort = await this.waitUntilSettled({ notPort: killedPort, replicas: 0 });
    return { killedPort, promotedPort };
  }

  /** Kills every process and removes the directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.sentinels, ...this.dataNodes].map((server) => server.kill()));
    rmSync(this.directory, { recursive: true, force: true });
  }

  /**
   * Waits until every running sentinel names the same primary (`primaryPort`
   * if given, never `notPort`) and sees the two other sentinels, and that
   * primary answers ROLE master with at least `replicas` replicas linked
   * (default: every other running data node). Returns the primary's port.
   */
  private async waitUntilSettled({ primaryPort, notPort, replicas }: { primaryPort?: number; notPort?: number; replicas?: number }): Promise<number> {
    const primary = primaryPort === undefined ? (notPort === undefined ? 'one primary' : `one primary other than ${notPort}`) : `primary ${primaryPort}`;
    const linked = replicas === undefined ? 'every other data node' : String(replicas);
    return waitFor(`the sentinels to agree on ${primary} with ${linked} linked replicas`, async () => {
      // Each unmet condition throws what it saw, so that a timeout names the last one (waitFor reports it).
      const named = new Map<number, number>();
      for (const sentinel of this.sentinels.filter((s) => s.running)) {
        const fields = (await ask(sentinel.port, undefined, 'SENTINEL', 'MASTER', this.name)) as string[];
        const master = Object.fromEntries(fields.flatMap((value, index) => (index % 2 === 0 ? [[value, fields[index + 1]]] : [])));
        const seen = `sentinel ${sentinel.port} names port ${master['port']}, flags ${master['flags']}, ${master['num-other-sentinels']} other sentinels`;
        const port = Number(master['port']);
        if (port === notPort || (primaryPort !== undefined && port !== primaryPort)) throw new Error(seen);
        if (String(master['flags']) !== 'master' || Number(master['num-other-sentinels']) < 2) throw new Error(seen);
        named.set(sentinel.port, port);
      }
      const ports = new Set(named.values());
      const [port] = ports;
      if (port === undefined || ports.size > 1) throw new Error(`the sentinels name different primaries: ${[...named].map(([s, p]) => `${s} names ${p}`).join(', ')}`);
      const [role] = (await ask(port, this.password, 'ROLE')) as [string];
      if (role !== 'master') throw new Error(`node ${port}, which the sentinels name, answers ROLE ${role}`);
      const wanted = replicas ?? this.dataNodes.filter((node) => node.running && node.port !== port).length;
      const info = parseFields(String(await ask(port, this.password, 'INFO', 'replication')));
      if (Number(info['connected_slaves']) < wanted) throw new Error(`node ${port} has ${info['connected_slaves']} linked replicas, not ${wanted}`);
      return port;
    }, { timeoutMs: SETTLE_TIMEOUT_MS });
  }

  private dataNode(port: number): ServerProcess {
    const node = this.dataNodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`No data node on port ${port}.`);
    return node;
  }
}

/**
 * The configuration lines that make a server of a Sentinel set-up speak only
 * TLS on `port` (none without `tls`), and registers the port for {@link ask}.
 * A later `port` line wins over the plain one given before. Replicas and
 * sentinels connect out over TLS with `tls-replication yes` and then announce
 * their TLS port.
 */
function tlsOnly(port: number, tls: TestCertificates | undefined): string[] {
  if (tls === undefined) return [];
  tlsOnlyPorts.set(port, readFileSync(tls.caFile));
  return [
    'port 0', `tls-port ${port}`, `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, `tls-ca-cert-file ${tls.caFile}`,
    'tls-auth-clients no', 'tls-replication yes',
  ];
}
