import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { TableReader } from '../../../lib/client/index.ts';
import { installTriggers } from '../../../sql-triggers/installTriggers.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { triggerSpecFromConfig } from '../../../daemon/config/triggerSpecFromConfig.ts';
import { deleteKeysWithPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

const DAEMON_MAIN = fileURLToPath(new URL('./processes/daemonMain.ts', import.meta.url));

/** The seed example's schema, qualified, as the cached table `users`. */
export const SCHEMA = 'app';
export const USERS_QUERY = `SELECT uc.*, u.name AS user_name, u.nickname AS user_nickname, c.name AS city_name
  FROM ${SCHEMA}.users u JOIN ${SCHEMA}.users_cities uc USING (user_id) JOIN ${SCHEMA}.cities c USING (city_id)`;

/** Options of {@link writeSeedConfig}. */
export interface SeedConfigOptions {
  readonly postgresUrl: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly channel: string;
  /** The cached table's query (default {@link USERS_QUERY}). */
  readonly query?: string;
  /** More `redis` settings (username, password, tls). */
  readonly redis?: Record<string, unknown>;
  /** More `daemon` settings (leaseTtlMs, say). */
  readonly daemon?: Record<string, unknown>;
  /** More cached tables beside `users` (name → table configuration). */
  readonly tables?: Record<string, unknown>;
  /** The `capture` section (default: none, i.e. triggers). */
  readonly capture?: Record<string, unknown>;
}

/** A configuration file for the seed schema, written to a temporary directory, with the health endpoint on a free port. */
export function writeSeedConfig(options: SeedConfigOptions): { file: string; config: TablecacheConfig; remove(): void } {
  const directory = mkdtempSync(path.join(tmpdir(), 'tc-daemon-'));
  const file = path.join(directory, 'tablecache.json');
  const raw = {
    postgres: { url: options.postgresUrl },
    redis: { url: options.redisUrl, keyPrefix: options.keyPrefix, ...options.redis },
    triggers: { schema: 'tablecache', channel: options.channel },
    ...(options.capture === undefined ? {} : { capture: options.capture }),
    // Port 0: test files run daemons side by side, each on a free port.
    daemon: { batchWindowMs: 1, logLevel: 'info', http: { port: 0 }, ...options.daemon },
    tables: {
      users: {
        query: options.query ?? USERS_QUERY,
        primaryKey: 'user_id',
        sources: {
          [`${SCHEMA}.users`]: { key: 'user_id' },
          [`${SCHEMA}.users_cities`]: { key: 'user_id' },
          [`${SCHEMA}.cities`]: { key: 'city_id', match: 'city_id' },
        },
      },
      ...options.tables,
    },
  };
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return { file, config: parseConfig(raw, { file }), remove: () => rmSync(directory, { recursive: true, force: true }) };
}

/** Creates the seed tables in {@link SCHEMA} with `users` users spread over `cities` cities. */
export async function createUsers(pool: pg.Pool, users: number, cities: number): Promise<void> {
  await pool.query(`
    DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE;
    CREATE SCHEMA ${SCHEMA};
    CREATE TABLE ${SCHEMA}.users (user_id integer PRIMARY KEY, name text NOT NULL, nickname text);
    CREATE TABLE ${SCHEMA}.cities (city_id integer PRIMARY KEY, name text NOT NULL);
    CREATE TABLE ${SCHEMA}.users_cities (
      user_id integer PRIMARY KEY REFERENCES ${SCHEMA}.users (user_id),
      city_id integer NOT NULL REFERENCES ${SCHEMA}.cities (city_id)
    );
    CREATE INDEX ON ${SCHEMA}.users_cities (city_id);
    INSERT INTO ${SCHEMA}.cities SELECT i, 'City ' || i FROM generate_series(1, ${cities}) i;
    INSERT INTO ${SCHEMA}.users SELECT i, 'User ' || i, CASE WHEN i % 2 = 0 THEN 'u' || i END FROM generate_series(1, ${users}) i;
    INSERT INTO ${SCHEMA}.users_cities SELECT i, 1 + i % ${cities} FROM generate_series(1, ${users}) i;
    ANALYZE;
  `);
}

/** Installs the change triggers the configuration needs. */
export async function installConfigTriggers(pool: pg.Pool, config: TablecacheConfig): Promise<void> {
  const client = await pool.connect();
  try {
    await installTriggers(client, triggerSpecFromConfig(config));
  } finally {
    client.release();
  }
}

/** A daemon child process and the JSON log lines it has written so far. */
export class DaemonProcess {
  readonly logs: Record<string, unknown>[] = [];
  private readonly exited: Promise<number | null>;
  private stderr = '';

  private constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.logs.push({ msg: line });
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(configFile: string, ...flags: string[]): DaemonProcess {
    return new DaemonProcess(spawn(process.execPath, ['--import', 'tsx', DAEMON_MAIN, configFile, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Log lines whose message is `message`. */
  logged(message: string): Record<string, unknown>[] {
    return this.logs.filter((line) => line['msg'] === message);
  }

  /** Waits until `count` log lines with `message` were written. */
  async waitForLog(message: string, count = 1, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${count} log line(s) "${message}" from the daemon (stderr: ${this.stderr.slice(-500)})`, () => this.logged(message).length >= count, { timeoutMs });
  }

  /** Resolves to the exit code once the process has exited by itself (null when killed by a signal). */
  waitForExit(): Promise<number | null> {
    return this.exited;
  }

  /** Sends `signal` and resolves to the exit code (null when killed by a signal). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }

  get stderrText(): string {
    return this.stderr;
  }
}

/** What a daemon test file opened besides its database; any part may be missing when the setup failed half way. */
export interface DaemonTestResources {
  readonly daemons: readonly (DaemonProcess | undefined)[];
  /** How the daemons are stopped: SIGTERM lets them release their leases, SIGKILL is faster. */
  readonly stopWith: NodeJS.Signals;
  readonly reader: TableReader<Record<string, unknown>> | undefined;
  readonly redis: Redis | undefined;
  readonly keyPrefix: string;
  readonly removeConfig: (() => void) | undefined;
}

/** Stops the daemons and releases the reader, the test's Redis keys and connection, and the config file. */
export async function releaseDaemonTest(resources: DaemonTestResources): Promise<void> {
  await Promise.all(resources.daemons.map((daemon) => daemon?.stop(resources.stopWith)));
  await resources.reader?.close();
  if (resources.redis) {
    await deleteKeysWithPrefix(resources.redis, resources.keyPrefix);
    resources.redis.disconnect();
  }
  resources.removeConfig?.();
}
