import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { createUsers, SCHEMA, USERS_QUERY, writeSeedConfig, type SeedConfigOptions } from '../daemon/daemonHarness.ts';

/**
 * One mistake, one exit code, in every command: the README's table. The
 * daemon runs as `tablecache daemon` would, and must exit by itself (a
 * lasting mistake is not retried); a hung daemon fails the test at its
 * timeout.
 */

const BIN = path.resolve('bin/tablecache.js');
let db: TestDatabase;
const removals: (() => void)[] = [];

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function tablecache(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 50_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

function config(options: Partial<SeedConfigOptions> = {}): string {
  const written = writeSeedConfig({ postgresUrl: db.url, redisUrl: testRedisUrl(), keyPrefix: uniqueRedisPrefix('exitcodes'), channel: 'tc_exit_codes', ...options });
  removals.push(written.remove);
  return written.file;
}

function withUrl(change: (url: URL) => void): string {
  const url = new URL(db.url);
  change(url);
  return url.toString();
}

beforeAll(async () => {
  db = await createTestDatabase('cli_exit_codes');
  await createUsers(db.pool, 10, 2);
});

afterAll(async () => {
  for (const remove of removals) remove();
  await db?.drop();
});

const COMMANDS = ['triggers install', 'triggers status', 'verify', 'daemon'];

describe('exit codes, the same in every command', () => {
  it.each(COMMANDS)('%s: 2 when the configured query names a table the database does not have (42P01), naming the config path', async (command) => {
    const run = await tablecache([...command.split(' '), '--config', config({ query: USERS_QUERY.replace(`${SCHEMA}.cities`, `${SCHEMA}.citys`) })]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('tables.users.query: the query fails: relation "app.citys" does not exist (SQLSTATE 42P01)');
  });

  it.each(COMMANDS)('%s: 4 when Postgres refuses a configured query for another reason (here a syntax error)', async (command) => {
    const run = await tablecache([...command.split(' '), '--config', config({ query: `${USERS_QUERY} WHERE WHERE` })]);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('tables.users.query: the query fails: syntax error at or near "WHERE" (SQLSTATE 42601)');
  });

  it.each(COMMANDS)('%s: 3 when Postgres refuses the login: an unknown role (28000) or database (3D000)', async (command) => {
    const unknownRole = config({ postgresUrl: withUrl((url) => (url.username = 'tc_no_such_role')) });
    const unknownDatabase = config({ postgresUrl: withUrl((url) => (url.pathname = '/tc_no_such_database')) });
    const runs = await Promise.all([unknownRole, unknownDatabase].map((file) => tablecache([...command.split(' '), '--config', file])));
    expect(runs.map((run) => run.code)).toEqual([3, 3]);
    expect(runs[0]!.stderr).toContain('role "tc_no_such_role" does not exist');
    expect(runs[1]!.stderr).toContain('database "tc_no_such_database" does not exist');
  });

  it.each(['verify', 'daemon'])('%s: 3 when Redis refuses the login (WRONGPASS), saying so, without the password', async (command) => {
    const run = await tablecache([...command.split(' '), '--config', config({ redis: { username: 'tc_no_such_user', password: 'not-the-password' } })]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+ refused the connection: WRONGPASS/);
    expect(run.stderr).toContain('Check redis.username and redis.password');
    expect(run.stdout + run.stderr).not.toContain('not-the-password');
    expect(run.stdout).not.toContain('it does not answer yet');
  });
});
