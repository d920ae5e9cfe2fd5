import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type BenchCell, formatMarkdownTable } from './benchTable.ts';

/** A database that exists only for one benchmark. */
export interface BenchDatabase {
  /** Connection URL of the database. */
  readonly url: string;
  /** Drops the database (closing any connection still open on it). */
  drop(): Promise<void>;
  /** Same as {@link drop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What every benchmark's `run` gets from bench/run.ts. */
export interface BenchContext {
  /** Admin URL of the Postgres to benchmark on (`TABLECACHE_POSTGRES_URL`, default the local server). Create a database with {@link createDatabase}; don't use this one's tables. */
  readonly postgresUrl: string;
  /** URL of the Redis to benchmark on (`TABLECACHE_REDIS_URL`, default the local server). Use a key prefix of your own. */
  readonly redisUrl: string;
  /** Creates a fresh database; drop it with `await using` (the runner drops any left behind). */
  createDatabase(label: string): Promise<BenchDatabase>;
  /** Prints a markdown table (`### title`, then the rows) to stdout. */
  printTable(title: string, columns: readonly string[], rows: readonly (readonly BenchCell[])[]): void;
  /** Prints a progress line to stderr, so stdout holds only the tables. */
  note(message: string): void;
}

const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

async function runAsAdmin(adminUrl: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/**
 * The context bench/run.ts hands to every benchmark, and `dropLeftovers` for
 * the runner to drop databases a failed benchmark did not.
 */
export function createBenchContext(env: NodeJS.ProcessEnv = process.env): {
  context: BenchContext;
  dropLeftovers(): Promise<void>;
} {
  const postgresUrl = env.TABLECACHE_POSTGRES_URL || DEFAULT_POSTGRES_URL;
  const live = new Map<string, () => Promise<void>>();

  const createDatabase = async (label: string): Promise<BenchDatabase> => {
    const name = `tcbench_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
    await runAsAdmin(postgresUrl, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    const url = new URL(postgresUrl);
    url.pathname = `/${name}`;
    const drop = async () => {
      if (!live.delete(name)) return;
      await runAsAdmin(postgresUrl, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    };
    live.set(name, drop);
    return { url: url.toString(), drop, [Symbol.asyncDispose]: drop };
  };

  return {
    context: {
      postgresUrl,
      redisUrl: env.TABLECACHE_REDIS_URL || DEFAULT_REDIS_URL,
      createDatabase,
      printTable(title, columns, rows) {
        process.stdout.write(`${formatMarkdownTable(title, columns, rows)}\n\n`);
      },
      note(message) {
        process.stderr.write(`  ${message}\n`);
      },
    },
    async dropLeftovers() {
      for (const drop of [...live.values()]) await drop();
    },
  };
}
