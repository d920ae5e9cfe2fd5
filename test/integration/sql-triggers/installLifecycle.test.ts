import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installTriggers, installTriggersScript } from '../../../sql-triggers/installTriggers.ts';
import { readTriggerStatus } from '../../../sql-triggers/triggerStatus.ts';
import type { TriggerSpec } from '../../../sql-triggers/triggerSpec.ts';
import { uninstallTriggers } from '../../../sql-triggers/uninstallTriggers.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { ChangeListener } from './changeListener.ts';
import { createSeedSchema, seedTriggerSpec, withPoolClient } from './triggerFixtures.ts';

let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase('trigger_install');
  await createSeedSchema(db.pool);
});

afterEach(async () => {
  await db.drop();
});

const install = (spec: TriggerSpec = seedTriggerSpec) => withPoolClient(db.pool, (client) => installTriggers(client, spec));
const uninstall = (spec: TriggerSpec = seedTriggerSpec) => withPoolClient(db.pool, (client) => uninstallTriggers(client, spec));
const status = (spec: TriggerSpec = seedTriggerSpec) => withPoolClient(db.pool, (client) => readTriggerStatus(client, spec));

/** Every user-visible catalog object, by identity (not OID), so two snapshots compare what exists. */
async function catalogSnapshot(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ entry: string }>(`
    SELECT 'schema ' || nspname || ' ' || coalesce(obj_description(oid, 'pg_namespace'), '') AS entry FROM pg_namespace
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname || ' ' || tgenabled::text FROM pg_trigger
    UNION ALL
    SELECT 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    UNION ALL
    SELECT 'comment ' || pg_describe_object(classoid, objoid, objsubid) || ' ' || description FROM pg_description WHERE objoid >= 16384
    UNION ALL
    SELECT 'depends ' || pg_describe_object(classid, objid, objsubid) || ' on ' || pg_describe_object(refclassid, refobjid, refobjsubid)
      FROM pg_depend WHERE objid >= 16384 AND deptype <> 'p'
    ORDER BY 1`);
  return rows.map((row) => row.entry);
}

/** xmin of our catalog rows: they change whenever a row is rewritten, even with identical content. */
async function catalogRowVersions(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ entry: string }>(`
    SELECT 'function ' || proname || ' ' || xmin::text AS entry FROM pg_proc WHERE pronamespace = 'tablecache'::regnamespace
    UNION ALL
    SELECT 'trigger ' || tgname || ' ' || xmin::text FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'schema ' || nspname || ' ' || xmin::text FROM pg_namespace WHERE nspname = 'tablecache'
    ORDER BY 1`);
  return rows.map((row) => row.entry);
}

describe('installTriggers', () => {
  it('creates a function and four statement triggers per source table, in one transaction', async () => {
    const result = await install();
    expect(result.installedSources).toEqual(['public.users', 'public.users_cities', 'public.cities']);
    const { rows } = await db.pool.query<{ table: string; count: string }>(
      `SELECT tgrelid::regclass::text AS table, count(*) FROM pg_trigger WHERE tgname LIKE 'tablecache\\_%' GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { table: 'cities', count: '4' },
      { table: 'users', count: '4' },
      { table: 'users_cities', count: '4' },
    ]);
    expect((await status()).allCurrent).toBe(true);
  });

  it('changes nothing when run a second time: no statements, no rewritten catalog rows', async () => {
    await install();
    const before = await catalogRowVersions(db.pool);
    const second = await install();
    expect(second.statements).toEqual([]);
    expect(second.installedSources).toEqual([]);
    expect(await catalogRowVersions(db.pool)).toEqual(before);
  });

  it('plans but changes nothing on a dry run', async () => {
    const before = await catalogSnapshot(db.pool);
    const result = await withPoolClient(db.pool, (client) => installTriggers(client, seedTriggerSpec, { dryRun: true }));
    expect(result.dryRun).toBe(true);
    expect(result.statements.some((statement) => statement.startsWith('CREATE TRIGGER "tablecache_insert" AFTER INSERT ON "public"."users"'))).toBe(true);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
  });

  it('serialises concurrent installs: one installs, the other finds everything current', async () => {
    const results = await Promise.all([install(), install()]);
    const counts = results.map((result) => result.installedSources.length).sort();
    expect(counts).toEqual([0, 3]);
    expect((await status()).allCurrent).toBe(true);
  });

  it('removes the triggers and function of a source the spec no longer names', async () => {
    await install();
    const result = await install({ ...seedTriggerSpec, sources: seedTriggerSpec.sources.slice(0, 1) });
    expect(result.installedSources).toEqual([]);
    expect([...result.removedSources].sort()).toEqual(['public.cities', 'public.users_cities']);
    const { rows } = await db.pool.query(`SELECT DISTINCT tgrelid::regclass::text AS table FROM pg_trigger WHERE NOT tgisinternal`);
    expect(rows).toEqual([{ table: 'users' }]);
    const functions = await db.pool.query(`SELECT count(*)::int AS count FROM pg_proc WHERE pronamespace = 'tablecache'::regnamespace`);
    expect(functions.rows).toEqual([{ count: 1 }]);
  });

  it('gives the same catalog as running the printed install script', async () => {
    await db.pool.query(`BEGIN; ${installTriggersScript(seedTriggerSpec)} COMMIT;`);
    expect((await status()).allCurrent).toBe(true);
    expect((await install()).statements).toEqual([]);
  });
});

describe('uninstallTriggers', () => {
  it('leaves the catalog exactly as it was before install', async () => {
    const before = await catalogSnapshot(db.pool);
    await install();
    expect(await catalogSnapshot(db.pool)).not.toEqual(before);
    const result = await uninstall();
    expect([...result.removedSources].sort()).toEqual(['public.cities', 'public.users', 'public.users_cities']);
    expect(result.schemaDropped).toBe(true);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
  });

  it('keeps a schema that existed before install, and what else it holds', async () => {
    await db.pool.query('CREATE SCHEMA tablecache; CREATE TABLE tablecache.operator_notes (note text)');
    const before = await catalogSnapshot(db.pool);
    await install();
    const result = await uninstall();
    expect(result.schemaDropped).toBe(false);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
  });

  it('does nothing when nothing is installed', async () => {
    const result = await uninstall();
    expect(result).toEqual({ statements: [], removedSources: [], schemaDropped: false, dryRun: false });
  });
});

describe('readTriggerStatus on a drifted install', () => {
  it('reports missing, disabled, stale and unknown sources, and install repairs all of them', async () => {
    await db.pool.query('CREATE TABLE old_source (id integer PRIMARY KEY)');
    await install({ ...seedTriggerSpec, sources: [...seedTriggerSpec.sources, { schema: 'public', table: 'old_source', keyColumns: ['id'] }] });
    await db.pool.query('ALTER TABLE users DISABLE TRIGGER tablecache_update');
    await db.pool.query('DROP TRIGGER tablecache_truncate ON cities');
    const drifted = {
      ...seedTriggerSpec,
      sources: seedTriggerSpec.sources.map((source) => (source.table === 'users_cities' ? { ...source, keyColumns: ['user_id', 'city_id'] } : source)),
    };
    const before = await status(drifted);
    expect(before.allCurrent).toBe(false);
    expect(before.sources.map(({ source, state, installedVersion }) => ({ source, state, installedVersion }))).toEqual([
      { source: 'public.users', state: 'disabled', installedVersion: 1 },
      { source: 'public.users_cities', state: 'stale', installedVersion: 1 },
      { source: 'public.cities', state: 'missing', installedVersion: 1 },
      { source: 'public.old_source', state: 'not_in_config', installedVersion: 1 },
    ]);
    expect(before.sources[0]!.detail).toBe('trigger(s) tablecache_update disabled');
    expect(before.sources[2]!.detail).toBe('trigger(s) tablecache_truncate missing');

    const repaired = await install(drifted);
    expect(repaired.installedSources).toEqual(['public.users', 'public.users_cities', 'public.cities']);
    expect(repaired.removedSources).toEqual(['public.old_source']);
    expect((await status(drifted)).allCurrent).toBe(true);
    const { rows } = await db.pool.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'old_source'::regclass`);
    expect(rows).toEqual([]);
  });

  it('reports every source missing before install', async () => {
    const result = await status();
    expect(result.sources.map((source) => source.state)).toEqual(['missing', 'missing', 'missing']);
    expect(result.sources.every((source) => source.installedVersion === null && source.detail === 'not installed')).toBe(true);
  });
});

describe('hostile identifiers', () => {
  it('quotes table, schema and column names with quotes, dots and semicolons, so they work and are never run as SQL', async () => {
    const schema = 'Sch"ema; DROP TABLE users; --';
    const table = 'ta.ble"; DROP TABLE cities; --';
    const column = 'ke"y;$tc$ --';
    await db.pool.query(`CREATE SCHEMA "Sch""ema; DROP TABLE users; --"`);
    await db.pool.query(`CREATE TABLE "Sch""ema; DROP TABLE users; --"."ta.ble""; DROP TABLE cities; --" ("ke""y;$tc$ --" text PRIMARY KEY, "v'al" text)`);
    const spec: TriggerSpec = { ...seedTriggerSpec, sources: [{ schema, table, keyColumns: [column], columns: ["v'al"] }] };
    await install(spec);
    await using listener = await ChangeListener.listen(db.url, spec.channel);
    await db.pool.query(`INSERT INTO "Sch""ema; DROP TABLE users; --"."ta.ble""; DROP TABLE cities; --" VALUES ('it''s "quoted"', 'x')`);
    expect(await listener.drain(db.pool)).toEqual([
      {
        v: 1,
        t: '"Sch""ema; DROP TABLE users; --"."ta.ble""; DROP TABLE cities; --"',
        op: 'I',
        xid: expect.any(String),
        ts: expect.any(Number),
        c: [column],
        k: [['it\'s "quoted"']],
      },
    ]);
    const { rows } = await db.pool.query(`SELECT to_regclass('public.users') IS NOT NULL AS users, to_regclass('public.cities') IS NOT NULL AS cities`);
    expect(rows).toEqual([{ users: true, cities: true }]);
    expect((await status(spec)).allCurrent).toBe(true);
    expect((await uninstall()).removedSources).toEqual(['"Sch""ema; DROP TABLE users; --"."ta.ble""; DROP TABLE cities; --"']);
  });
});

describe('privileges', () => {
  it('lets a role with only INSERT, UPDATE and DELETE on a source table write, and its writes notify', async () => {
    await install();
    const role = `tc_writer_${randomBytes(4).toString('hex')}`;
    await db.pool.query(`CREATE ROLE ${role} LOGIN; GRANT INSERT, UPDATE, DELETE, SELECT ON cities TO ${role}`);
    try {
      await using listener = await ChangeListener.listen(db.url, seedTriggerSpec.channel);
      const writerUrl = new URL(db.url);
      writerUrl.username = role;
      const writer = new pg.Client({ connectionString: writerUrl.toString() });
      await writer.connect();
      try {
        const denied = await writer.query(`SELECT has_schema_privilege('tablecache', 'USAGE') AS usage`);
        expect(denied.rows).toEqual([{ usage: false }]);
        await writer.query(`INSERT INTO cities(city_id, name) VALUES (3, 'City 3')`);
        await writer.query(`UPDATE cities SET name = 'Town 3' WHERE city_id = 3`);
        await writer.query(`DELETE FROM cities WHERE city_id = 3`);
      } finally {
        await writer.end();
      }
      expect((await listener.drain(db.pool)).map((payload) => payload.op === 'T' || payload.op === 'X' ? payload.op : [payload.op, payload.k])).toEqual([
        ['I', [[3]]],
        ['U', [[3]]],
        ['D', [[3]]],
      ]);
    } finally {
      await db.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});
