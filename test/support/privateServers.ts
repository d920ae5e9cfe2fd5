import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { waitFor } from './waitFor.ts';

/**
 * Postgres and Redis servers of a test's own, on free ports, for tests that
 * kill, restart or pause a server: the shared servers on 5432 and 6379 serve
 * every other test file in parallel and must never be touched.
 */

const run = promisify(execFile);

/** Ports this process handed out: two servers of one test never get the same one. */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (nothing listens on it once this resolves),
 * below Linux's ephemeral range (32768–60999): a port from that range can
 * be taken by any outgoing connection of the parallel test files before the
 * server binds it, and redis-server then exits with "Address already in use".
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
}

function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Starts a Redis server without persistence on `port` (a restart loses every key) and resolves once it answers PING. */
export async function startPrivateRedis(port: number): Promise<ChildProcess> {
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitFor(`redis-server on port ${port}`, async () => {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } finally {
      probe.disconnect();
    }
  });
  return server;
}

/** A private redis-server that can be restarted (losing its data) and paused. */
export class PrivateRedis {
  private constructor(
    readonly port: number,
    private server: ChildProcess,
  ) {}

  /** Starts one on a free port. */
  static async start(): Promise<PrivateRedis> {
    const port = await freePort();
    return new PrivateRedis(port, await startPrivateRedis(port));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** SIGKILLs the server and starts a new one on the same port: every key is gone. */
  async restart(): Promise<void> {
    await this.kill();
    this.server = await startPrivateRedis(this.port);
  }

  /** `CLIENT PAUSE ms ALL`: every client's commands wait until the pause ends (this returns at once). */
  async pause(ms: number): Promise<void> {
    const admin = new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      await admin.call('CLIENT', 'PAUSE', String(Math.round(ms)), 'ALL');
    } finally {
      admin.disconnect();
    }
  }

  /** Stops the server for good. */
  async stop(): Promise<void> {
    await this.kill();
  }

  private async kill(): Promise<void> {
    if (this.server.exitCode !== null || this.server.signalCode !== null) return;
    const exited = new Promise((resolve) => this.server.once('exit', resolve));
    this.server.kill('SIGKILL');
    await exited;
  }
}

/** The Postgres 15 binaries of the Debian/Ubuntu packages (override with TABLECACHE_PG_BIN). */
const PG_BIN = process.env['TABLECACHE_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/**
 * The variable naming a directory where the first private cluster of a test
 * run leaves a freshly initdb'd data directory that every later one copies:
 * initdb takes seconds on a loaded machine, a copy a fraction of one.
 * globalSetup sets it (see {@link createPostgresTemplateDirectory}); without
 * it (the chaos runner, the benches) every cluster runs initdb.
 */
const TEMPLATE_VARIABLE = 'TABLECACHE_TEST_PG_TEMPLATE';

/** The OS user initdb and the server run as when this process is root (Postgres refuses to run as root). */
async function serverUserIds(): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Runs `command` as the server's OS user (see {@link serverUserIds}). */
async function runAsServerUser(command: string, args: readonly string[], cwd: string): Promise<void> {
  const [program, programArgs] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, [...args]];
  await run(program, programArgs as string[], { cwd });
}

/** An empty directory of this process, owned by the server's OS user when run as root. */
async function serverUserDirectory(prefix: string): Promise<string> {
  const directory = mkdtempSync(path.join(tmpdir(), prefix));
  const ids = await serverUserIds();
  if (ids !== null) chownSync(directory, ids.uid, ids.gid);
  return directory;
}

/** initdb with the settings every private cluster shares (trust authentication, superuser `postgres`). */
async function initdb(dataDir: string, cwd: string): Promise<void> {
  await runAsServerUser(path.join(PG_BIN, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], cwd);
}

/**
 * Creates the run's template directory (empty: the first cluster that needs
 * it fills it, so a run without private clusters pays nothing) and exports
 * it to the test processes started after this call. `remove` deletes it.
 */
export async function createPostgresTemplateDirectory(): Promise<{ remove(): void }> {
  const directory = await serverUserDirectory('tc-private-pg-template-');
  process.env[TEMPLATE_VARIABLE] = directory;
  return { remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/**
 * Fills `dataDir` with a new cluster: a copy of the run's template (made
 * here by the first caller; parallel first callers each run initdb and all
 * but one discard theirs), or initdb's own output without a template.
 */
async function createDataDirectory(dataDir: string, cwd: string): Promise<void> {
  const template = process.env[TEMPLATE_VARIABLE];
  if (template === undefined || !existsSync(template)) return initdb(dataDir, cwd);
  const templateData = path.join(template, 'data');
  if (!existsSync(templateData)) {
    const candidate = path.join(template, `data-${process.pid}-${randomUUID()}`);
    await initdb(candidate, cwd);
    try {
      // rename(2) onto a non-empty directory fails: the first cluster to finish initdb provides the template.
      renameSync(candidate, templateData);
    } catch {
      rmSync(candidate, { recursive: true, force: true });
    }
  }
  // cp -a keeps the owner and the 0700 mode the server insists on.
  await runAsServerUser('cp', ['-a', templateData, dataDir], cwd);
}

/**
 * A private Postgres cluster in a temporary directory. Postgres refuses to
 * run as root, so as root initdb and the server run as the OS user
 * `postgres` (`runuser`), which then owns the directory.
 */
export class PrivatePostgres {
  private stopped = false;

  private constructor(
    readonly port: number,
    private readonly directory: string,
    private readonly settings: Readonly<Record<string, string | number>>,
  ) {}

  /**
   * Creates a cluster (trust authentication, superuser `postgres`; a copy of
   * the run's template when there is one) and starts the server on a free port. `settings` are passed as `-c name=value` after the
   * defaults, so they override them (e.g. `{ wal_level: 'logical', fsync: 'on' }`).
   */
  static async start(settings: Readonly<Record<string, string | number>> = {}): Promise<PrivatePostgres> {
    for (const [name, value] of Object.entries(settings)) {
      // pg_ctl hands the options to a shell: allow only plain words.
      if (!/^\w+$/.test(name) || !/^[\w.]+$/.test(String(value))) throw new Error(`Unsupported Postgres setting ${name}=${value}: use a plain name and value.`);
    }
    const directory = await serverUserDirectory('tc-private-pg-');
    const server = new PrivatePostgres(await freePort(), directory, settings);
    try {
      await createDataDirectory(server.dataDir, directory);
      await server.startServer();
      return server;
    } catch (error) {
      rmSync(directory, { recursive: true, force: true });
      throw error;
    }
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private get dataDir(): string {
    return path.join(this.directory, 'data');
  }

  /**
   * Stops the server with `mode` (`immediate`: like a crash, recovery at the
   * next start; `fast`: a clean shutdown) and starts it again; resolves once
   * it accepts connections.
   */
  async restart(mode: 'immediate' | 'fast' = 'immediate'): Promise<void> {
    await this.asPostgres('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop']);
    await this.startServer();
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.asPostgres('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    rmSync(this.directory, { recursive: true, force: true });
  }

  private async startServer(): Promise<void> {
    // fsync off: the data is thrown away, and a crash restart (immediate) still runs WAL recovery.
    const overrides = Object.entries(this.settings).map(([name, value]) => ` -c ${name}=${value}`);
    const options = `-p ${this.port} -k ${this.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100${overrides.join('')}`;
    await this.asPostgres('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.directory, 'postgres.log'), '-o', options, '-w', '-t', '60', 'start']);
    await waitFor(`private Postgres on port ${this.port}`, async () => {
      const client = new pg.Client({ connectionString: this.url });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    });
  }

  private async asPostgres(program: string, args: readonly string[]): Promise<void> {
    await runAsServerUser(path.join(PG_BIN, program), args, this.directory);
  }
}
