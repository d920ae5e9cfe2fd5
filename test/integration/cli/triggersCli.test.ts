import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { createSeedSchema } from '../sql-triggers/triggerFixtures.ts';

const BIN = path.resolve('bin/tablecache.js');
let db: TestDatabase;
let directory: string;
let seedConfig: string;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as a user would, in a child process. */
function tablecache(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, TABLECACHE_POSTGRES_URL: db.url, ...env }, cwd: directory },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function writeConfig(name: string, sources: string): string {
  const file = path.join(directory, name);
  writeFileSync(
    file,
    `postgres: { url: "\${TABLECACHE_POSTGRES_URL}" }
redis: { url: "redis://127.0.0.1:6379" }
tables:
  users:
    query: |
      SELECT uc.*, u.name AS user_name, u.nickname AS user_nickname, c.name AS city_name
      FROM users u JOIN users_cities uc USING (user_id) JOIN cities c USING (city_id)
    primaryKey: user_id
    sources:
${sources}
`,
  );
  return file;
}

beforeAll(async () => {
  db = await createTestDatabase('cli_triggers');
  await createSeedSchema(db.pool);
  directory = mkdtempSync(path.join(tmpdir(), 'tablecache-cli-'));
  seedConfig = writeConfig(
    'tablecache.yaml',
    `      users:        { key: user_id, columns: [name, nickname] }
      users_cities: { key: user_id }
      cities:       { key: city_id, match: city_id }`,
  );
});

afterAll(async () => {
  rmSync(directory, { recursive: true, force: true });
  await db?.drop();
});

describe('tablecache triggers', () => {
  it('prints help for every command, with the exit codes at the top level', async () => {
    const top = await tablecache(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/Exit codes:\n\s+0 +success/);
    for (const command of ['install', 'uninstall', 'status', 'sql']) {
      const help = await tablecache(['triggers', command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: tablecache triggers ${command} [options]`);
      expect(help.stdout).toContain('-c, --config <file>');
    }
  });

  it('installs, reports status, upgrades nothing on a second run, and uninstalls, with the documented exit codes', async () => {
    const before = await tablecache(['triggers', 'status', '--config', seedConfig]);
    expect(before.code).toBe(1);
    expect(before.stdout).toMatch(/public\.users\s+no\s+-\s+missing\s+not installed/);

    const dryRun = await tablecache(['triggers', 'install', '--config', seedConfig, '--dry-run']);
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toMatch(/^BEGIN;/);
    expect(dryRun.stdout).toContain('CREATE TRIGGER "tablecache_update" AFTER UPDATE ON "public"."users_cities" REFERENCING OLD TABLE AS tc_old_rows NEW TABLE AS tc_new_rows FOR EACH STATEMENT');
    expect(dryRun.stdout.trimEnd()).toMatch(/COMMIT;$/);
    expect((await tablecache(['triggers', 'status', '--config', seedConfig])).code).toBe(1);

    const install = await tablecache(['triggers', 'install', '--config', seedConfig]);
    expect(install).toMatchObject({ code: 0, stderr: '' });
    expect(install.stdout).toBe('Installed change triggers (schema tablecache, channel tablecache_changes) on: public.users, public.users_cities, public.cities\n');
    const again = await tablecache(['triggers', 'install', '--config', seedConfig]);
    expect(again.stdout).toContain('nothing changed');

    const current = await tablecache(['triggers', 'status', '--config', seedConfig]);
    expect(current.code).toBe(0);
    expect(current.stdout).toMatch(/public\.cities\s+yes\s+1\s+current/);
    expect(current.stdout).toContain('All 3 source table(s) are current');

    await db.pool.query('ALTER TABLE cities DISABLE TRIGGER tablecache_insert');
    const drifted = await tablecache(['triggers', 'status', '--config', seedConfig, '--json']);
    expect(drifted.code).toBe(1);
    const json = JSON.parse(drifted.stdout) as { allCurrent: boolean; sources: { source: string; state: string }[] };
    expect(json.allCurrent).toBe(false);
    expect(json.sources.find((source) => source.source === 'public.cities')).toMatchObject({ state: 'disabled' });

    const uninstall = await tablecache(['triggers', 'uninstall', '--config', seedConfig]);
    expect(uninstall.code).toBe(0);
    expect(uninstall.stdout).toContain('Dropped schema tablecache.');
    const { rows } = await db.pool.query(`SELECT count(*)::int AS count FROM pg_trigger WHERE NOT tgisinternal`);
    expect(rows).toEqual([{ count: 0 }]);
  });

  it('prints the install SQL without a database, and that SQL installs current triggers', async () => {
    const printed = await tablecache(['triggers', 'sql', '--config', seedConfig], { TABLECACHE_POSTGRES_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(printed.code).toBe(0);
    expect(printed.stdout).toMatch(/^-- tablecache change triggers, definition version 1/);
    await db.pool.query(`BEGIN; ${printed.stdout} COMMIT;`);
    const status = await tablecache(['triggers', 'status', '--config', seedConfig]);
    expect(status.code).toBe(0);
    expect((await tablecache(['triggers', 'uninstall', '--config', seedConfig])).code).toBe(0);
  });

  it('reads a TypeScript configuration in a folder without "type": "module", importing defineConfig or not', async () => {
    const tables = `{ users: { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } }`;
    const withDefineConfig = path.join(directory, 'tablecache.config.ts');
    writeFileSync(
      withDefineConfig,
      `import { defineConfig } from ${JSON.stringify(path.resolve('daemon/config/index.ts'))};
       export default defineConfig({ postgres: { url: 'postgres://db/app' }, redis: { url: 'redis://cache' }, tables: ${tables} });`,
    );
    const typed = path.join(directory, 'typed.config.cts');
    writeFileSync(typed, `const channel: string = 'typed_changes';
       export default { postgres: { url: 'postgres://db/app' }, redis: { url: 'redis://cache' }, triggers: { channel }, tables: ${tables} };`);
    for (const [file, channel] of [[withDefineConfig, 'tablecache_changes'], [typed, 'typed_changes']] as const) {
      const sql = await tablecache(['triggers', 'sql', '--config', file]);
      expect(sql).toMatchObject({ code: 0, stderr: '' });
      expect(sql.stdout).toContain(`channel ${channel}`);
    }
  });

  it('names an unknown source table with the tables that exist, nearest first (exit 2)', async () => {
    const config = writeConfig('unknown-table.yaml', '      userz: { key: user_id }');
    const run = await tablecache(['triggers', 'install', '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('tables.users.sources.userz: table public.userz does not exist; tables that do, nearest first: public.users, public.cities, public.users_cities');
  });

  it('names an unknown key column with the table\'s columns (exit 2)', async () => {
    const config = writeConfig('unknown-column.yaml', '      users: { key: user_idd, columns: [nick] }');
    const run = await tablecache(['triggers', 'install', '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('tables.users.sources.users.key: key column "user_idd" is not a column of public.users; its columns: user_id, name, nickname');
    expect(run.stderr).toContain('tables.users.sources.users.columns: column "nick" is not a column of public.users; its columns: name, nickname, user_id');
  });

  it('names the host and cause of a connection failure, never the password (exit 3)', async () => {
    const run = await tablecache(['triggers', 'status', '--config', seedConfig], { TABLECACHE_POSTGRES_URL: 'postgres://app:s3cret-pw@127.0.0.1:1/app' });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('Cannot connect to Postgres at 127.0.0.1:1 (database app, user app): connect ECONNREFUSED 127.0.0.1:1');
    expect(run.stderr + run.stdout).not.toContain('s3cret-pw');
  });

  it('gives up with exit code 4 when a source table stays locked past --lock-timeout, and changes nothing', async () => {
    await db.pool.query('DROP SCHEMA IF EXISTS tablecache CASCADE');
    const holder = await db.pool.connect();
    try {
      // What a writer's open transaction holds; CREATE TRIGGER must wait for it.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cities IN ROW EXCLUSIVE MODE');
      const run = await tablecache(['triggers', 'install', '--config', seedConfig, '--lock-timeout', '200']);
      expect(run.code).toBe(4);
      expect(run.stderr).toContain('Postgres refused: canceling statement due to lock timeout (SQLSTATE 55P03)');
      expect(run.stderr).toContain('raise --lock-timeout');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const { rows } = await db.pool.query(`SELECT count(*)::int AS count FROM pg_trigger WHERE NOT tgisinternal`);
    expect(rows).toEqual([{ count: 0 }]);
  });

  it('explains with exit code 4 that the installer must own the source tables', async () => {
    await db.pool.query('DROP SCHEMA IF EXISTS tablecache CASCADE');
    const role = `tc_installer_${randomBytes(4).toString('hex')}`;
    await db.pool.query(`CREATE ROLE ${role} LOGIN; GRANT CREATE ON DATABASE "${new URL(db.url).pathname.slice(1)}" TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    try {
      const url = new URL(db.url);
      url.username = role;
      const run = await tablecache(['triggers', 'install', '--config', seedConfig], { TABLECACHE_POSTGRES_URL: url.toString() });
      expect(run.code).toBe(4);
      expect(run.stderr).toContain('Postgres refused: permission denied for table users (SQLSTATE 42501)');
      expect(run.stderr).toContain('must own the source tables');
    } finally {
      await db.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it('reports usage and configuration errors with exit code 2', async () => {
    const noConfig = await tablecache(['triggers', 'status']);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain("required option '-c, --config <file>' not specified");
    const missingVariable = await tablecache(['triggers', 'sql', '--config', seedConfig], { TABLECACHE_POSTGRES_URL: '' });
    expect(missingVariable.code).toBe(2);
    expect(missingVariable.stderr).toContain('postgres.url: environment variable TABLECACHE_POSTGRES_URL is not set');
    const unknownCommand = await tablecache(['triggers', 'instal']);
    expect(unknownCommand.code).toBe(2);
  });
});
