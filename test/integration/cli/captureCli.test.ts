import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../cli/main.ts';
import { PrivatePostgres } from '../../support/privateServers.ts';

// One private cluster with wal_level = logical for the file: the shared server is wal_level = replica.
let server: PrivatePostgres;
let admin: pg.Client;
let directory: string;
let logicalConfig: string;
let triggersConfig: string;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in this process (a child process per command would cost seconds each on a loaded machine). */
async function tablecache(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(
    ['node', 'tablecache', ...args],
    (text) => (stdout += text),
    (text) => (stderr += text),
  );
  return { code, stdout, stderr };
}

function writeConfig(name: string, capture: string): string {
  const file = path.join(directory, name);
  writeFileSync(
    file,
    `postgres: { url: "${server.url}" }
redis: { url: "redis://127.0.0.1:6379", keyPrefix: "${name.replace(/\W/g, '')}:" }
capture: ${capture}
tables:
  users:
    query: SELECT * FROM users
    primaryKey: user_id
    sources:
      users: { key: user_id, columns: [name] }
`,
  );
  return file;
}

async function slotCount(): Promise<number> {
  return (await admin.query(`SELECT FROM pg_replication_slots WHERE slot_name = 'cli_slot'`)).rowCount ?? 0;
}

beforeAll(async () => {
  server = await PrivatePostgres.start({ wal_level: 'logical' });
  admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('CREATE TABLE users (user_id int PRIMARY KEY, name text)');
  directory = mkdtempSync(path.join(tmpdir(), 'tablecache-capture-cli-'));
  logicalConfig = writeConfig('logical.yaml', '{ method: logical, slot: cli_slot, publication: cli_pub }');
  triggersConfig = writeConfig('triggers.yaml', '{ method: triggers, slot: cli_slot, publication: cli_pub }');
}, 60_000);

afterAll(async () => {
  rmSync(directory, { recursive: true, force: true });
  await admin?.end();
  await server?.stop();
});

describe('tablecache capture', () => {
  it('install --dry-run prints the SQL and changes nothing; install, then status exit 0; sql needs no database', async () => {
    const dryRun = await tablecache(['capture', 'install', '--config', logicalConfig, '--dry-run']);
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toContain('CREATE PUBLICATION "cli_pub" FOR TABLE "public"."users"');
    expect(dryRun.stdout).toContain(`SELECT pg_catalog.pg_create_logical_replication_slot('cli_slot', 'pgoutput');`);
    // The column filter without REPLICA IDENTITY FULL is a warning, with its fix, in the script.
    expect(dryRun.stdout).toContain('--   Fix: for the filter to skip updates that change none of them: ALTER TABLE public.users REPLICA IDENTITY FULL;');
    expect(await slotCount()).toBe(0);

    const install = await tablecache(['capture', 'install', '--config', logicalConfig]);
    expect(install).toMatchObject({ code: 0, stdout: expect.stringContaining('Created replication slot cli_slot (pgoutput)') });
    expect(install.stderr).toContain('ALTER TABLE public.users REPLICA IDENTITY FULL;');
    const again = await tablecache(['capture', 'install', '--config', logicalConfig]);
    expect(again.stdout).toContain('nothing changed');

    const status = await tablecache(['capture', 'status', '--config', logicalConfig]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/slot +cli_slot: inactive/);
    expect(status.stdout).toMatch(/publication +cli_pub: 1 table\(s\); none missing; none extra/);
    const json = JSON.parse((await tablecache(['capture', 'status', '--config', logicalConfig, '--json'])).stdout);
    expect(json).toMatchObject({ method: 'logical', allCurrent: true, slot: { active: false, walStatus: 'reserved' } });

    const sql = await tablecache(['capture', 'sql', '--config', logicalConfig]);
    expect(sql.stdout).toContain(`WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = 'cli_slot')`);
  });

  it('with method triggers acts on the triggers, and --method logical reaches the slot after a switch', async () => {
    const triggers = await tablecache(['capture', 'install', '--config', triggersConfig]);
    expect(triggers).toMatchObject({ code: 0, stdout: expect.stringContaining('Installed change triggers') });
    expect((await tablecache(['capture', 'status', '--config', triggersConfig])).stdout).toContain('source table(s) are current');

    const uninstall = await tablecache(['capture', 'uninstall', '--config', triggersConfig, '--method', 'logical']);
    expect(uninstall).toMatchObject({ code: 0, stdout: 'Dropped replication slot cli_slot.\nDropped publication cli_pub.\n' });
    expect(await slotCount()).toBe(0);
    const status = await tablecache(['capture', 'status', '--config', logicalConfig]);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('cli_slot: does not exist (run `tablecache capture install`)');
    expect((await tablecache(['triggers', 'uninstall', '--config', triggersConfig])).code).toBe(0);
  });

  it('exits 5 naming the fix when the table cannot be published safely', async () => {
    await admin.query('ALTER TABLE users REPLICA IDENTITY NOTHING');
    try {
      const install = await tablecache(['capture', 'install', '--config', logicalConfig]);
      expect(install.code).toBe(5);
      expect(install.stderr).toContain('public.users has REPLICA IDENTITY NOTHING: once it is in the publication, Postgres refuses every UPDATE and DELETE on it');
      expect(install.stderr).toContain('Fix: ALTER TABLE public.users REPLICA IDENTITY FULL;');
      expect(await slotCount()).toBe(0);
      expect((await tablecache(['capture', 'status', '--config', logicalConfig])).code).toBe(5);
    } finally {
      await admin.query('ALTER TABLE users REPLICA IDENTITY DEFAULT');
    }
  });
});
