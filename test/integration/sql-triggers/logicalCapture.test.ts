import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaptureSetupError } from '../../../sql-triggers/logicalCaptureChecks.ts';
import { installLogicalCapture, logicalCaptureScript } from '../../../sql-triggers/logicalCapture.ts';
import type { LogicalCaptureSpec } from '../../../sql-triggers/logicalCaptureSpec.ts';
import { readLogicalCaptureStatus } from '../../../sql-triggers/logicalCaptureStatus.ts';
import { uninstallLogicalCapture } from '../../../sql-triggers/logicalCaptureUninstall.ts';
import { readLogicalCaptureGaps } from '../../../sql-triggers/logicalCaptureGaps.ts';
import { parseChangePayload } from '../../../sql-triggers/payload.ts';
import { createTestDatabase } from '../../support/postgres.ts';
import { PrivatePostgres } from '../../support/privateServers.ts';
import { waitFor } from '../../support/waitFor.ts';

// One private cluster with wal_level = logical for the whole file (the shared server is wal_level = replica).
let server: PrivatePostgres;
let admin: pg.Client;

const users = { schema: 'public', table: 'users', keyColumns: ['user_id'], columns: ['name'] };
const cities = { schema: 'public', table: 'cities', keyColumns: ['city_id'] };
const members = { schema: 'public', table: 'members', keyColumns: ['user_id', 'city_id'] };

function spec(name: string, sources = [users, cities]): LogicalCaptureSpec {
  return { slot: `${name}_slot`, publication: `${name}_pub`, sources };
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

const run = (target: LogicalCaptureSpec, options: Parameters<typeof installLogicalCapture>[2] = {}) =>
  withClient(server.url, (client) => installLogicalCapture(client, target, options));
const status = (target: LogicalCaptureSpec) => withClient(server.url, (client) => readLogicalCaptureStatus(client, target));

async function objects(target: LogicalCaptureSpec): Promise<{ slots: number; publications: string[] }> {
  const slots = await admin.query('SELECT FROM pg_replication_slots WHERE slot_name = $1', [target.slot]);
  const publications = await admin.query<{ entry: string }>(
    `SELECT schemaname || '.' || tablename AS entry FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`,
    [target.publication],
  );
  return { slots: slots.rowCount ?? 0, publications: publications.rows.map((row) => row.entry) };
}

async function setupError(promise: Promise<unknown>): Promise<CaptureSetupError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CaptureSetupError);
  return error as CaptureSetupError;
}

beforeAll(async () => {
  server = await PrivatePostgres.start({ wal_level: 'logical', max_replication_slots: 10, max_wal_senders: 10 });
  admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`
    CREATE TABLE users (user_id int PRIMARY KEY, name text, nickname text);
    CREATE TABLE cities (city_id int PRIMARY KEY, name text);
    CREATE TABLE members (user_id int NOT NULL, city_id int NOT NULL, since date, PRIMARY KEY (user_id));
    CREATE TABLE events (id int, payload text);`);
}, 60_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

describe('installLogicalCapture', () => {
  it('creates the publication, then the slot; a second run changes nothing; a dry run changes nothing', async () => {
    const target = spec('fresh');
    const dryRun = await run(target, { dryRun: true });
    expect(dryRun.publicationStatements).toEqual([
      `CREATE PUBLICATION "fresh_pub" FOR TABLE "public"."users", "public"."cities" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)`,
      expect.stringMatching(/^COMMENT ON PUBLICATION "fresh_pub" IS 'tablecache: /),
    ]);
    expect(dryRun.slotStatements).toEqual([`SELECT pg_catalog.pg_create_logical_replication_slot('fresh_slot', 'pgoutput')`]);
    expect(await objects(target)).toEqual({ slots: 0, publications: [] });

    const first = await run(target);
    expect(first).toMatchObject({ publicationCreated: true, slotCreated: true, publicationStatements: dryRun.publicationStatements, slotStatements: dryRun.slotStatements });
    // users filters on name, but its primary key gives no old name to compare.
    expect(first.warnings.map((warning) => warning.fix)).toEqual([expect.stringContaining('ALTER TABLE public.users REPLICA IDENTITY FULL;')]);
    expect(await objects(target)).toEqual({ slots: 1, publications: ['public.cities', 'public.users'] });

    const second = await run(target);
    expect(second).toMatchObject({ publicationStatements: [], slotStatements: [], publicationCreated: false, slotCreated: false, addedTables: [], removedTables: [] });
  });

  it('adds and removes tables when the configuration changes', async () => {
    const target = spec('changing');
    await run(target);
    const changed = await run(spec('changing', [cities, { ...members, keyColumns: ['user_id'] }]));
    expect(changed).toMatchObject({ addedTables: ['public.members'], removedTables: ['public.users'], slotCreated: false });
    expect(await objects(target)).toEqual({ slots: 1, publications: ['public.cities', 'public.members'] });
  });

  it('names the fix for a replica identity that cannot give old keys, and changes nothing', async () => {
    const target = spec('identity', [members, { schema: 'public', table: 'events', keyColumns: ['id'] }]);
    const error = await setupError(run(target));
    expect(error.code).toBe('TC_CAPTURE_SETUP');
    expect(error.checks.map((check) => [check.topic, check.fix])).toEqual([
      ['replica_identity', expect.stringContaining('ALTER TABLE public.members REPLICA IDENTITY FULL;')],
      ['replica_identity', expect.stringContaining('ALTER TABLE public.events REPLICA IDENTITY FULL; (or add a primary key that holds the key columns id)')],
    ]);
    expect(error.message).toMatch(/members: its primary key \(user_id\) does not hold key column\(s\) city_id/);
    expect(error.message).toMatch(/events has REPLICA IDENTITY DEFAULT and no primary key: once it is in the publication, Postgres refuses every UPDATE and DELETE/);
    expect(await objects(target)).toEqual({ slots: 0, publications: [] });
  });

  it('checks the identity of every partition, and publishes a partitioned source under its own name', async () => {
    await admin.query(`
      CREATE TABLE measurements (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
      CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
      ALTER TABLE measurements_2026 REPLICA IDENTITY NOTHING;`);
    const target = spec('partitioned', [{ schema: 'public', table: 'measurements', keyColumns: ['id'] }]);
    const error = await setupError(run(target));
    expect(error.checks.map((check) => check.message)).toEqual([expect.stringMatching(/^public\.measurements_2026 \(below source public\.measurements\) has REPLICA IDENTITY NOTHING/)]);
    await admin.query('ALTER TABLE measurements_2026 REPLICA IDENTITY DEFAULT');
    const installed = await run(target);
    expect(installed.warnings.map((warning) => warning.topic)).toEqual(['partition_truncate']);
    expect(await objects(target)).toEqual({ slots: 1, publications: ['public.measurements'] });
  });

  it("gives every partition a TRUNCATE trigger that sends the root's truncate as a logical message on the channel; status, the daemon's check and uninstall know them", async () => {
    // A partition of its own partitions too (a TRUNCATE of it is not published through the root either).
    await admin.query(`
      CREATE TABLE measurements_2027 PARTITION OF measurements FOR VALUES FROM ('2027-01-01') TO ('2028-01-01') PARTITION BY RANGE (at);
      CREATE TABLE measurements_2027_h1 PARTITION OF measurements_2027 FOR VALUES FROM ('2027-01-01') TO ('2027-07-01');`);
    const target: LogicalCaptureSpec = { ...spec('truncating', [{ schema: 'public', table: 'measurements', keyColumns: ['id'] }]), partitionTruncate: { schema: 'tc_functions', channel: 'tc_chan' } };
    const installed = await run(target);
    expect(installed.warnings).toEqual([]);
    expect(installed.partitionTriggersCreated).toEqual(['public.measurements_2025', 'public.measurements_2026', 'public.measurements_2027', 'public.measurements_2027_h1']);
    expect((await run(target)).publicationStatements).toEqual([]);
    expect((await status(target)).partitionsWithoutTruncateTrigger).toEqual([]);

    await admin.query(`SELECT pg_create_logical_replication_slot('truncate_peek', 'test_decoding')`);
    try {
      await admin.query(`INSERT INTO measurements VALUES (1, '2025-03-01'), (2, '2027-03-01')`);
      await admin.query('TRUNCATE measurements_2025');
      await admin.query('TRUNCATE measurements_2027');
      const { rows } = await admin.query<{ data: string }>(`SELECT data FROM pg_logical_slot_get_changes('truncate_peek', NULL, NULL)`);
      const messages = rows.map((row) => row.data).filter((data) => data.startsWith('message:'));
      // One per truncated table: measurements_2027 and its partition each fire theirs.
      expect(messages).toHaveLength(3);
      for (const message of messages) {
        expect(message).toMatch(/^message: transactional: 1 prefix: tc_chan,/);
        expect(parseChangePayload(message.slice(message.indexOf('content:') + 'content:'.length))).toMatchObject({ ok: true, payload: { op: 'T', t: 'public.measurements' } });
      }
    } finally {
      await admin.query(`SELECT pg_drop_replication_slot('truncate_peek')`);
    }

    await admin.query(`CREATE TABLE measurements_2028 PARTITION OF measurements FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')`);
    expect((await status(target)).partitionsWithoutTruncateTrigger).toEqual(['public.measurements_2028']);
    expect(await withClient(server.url, (client) => readLogicalCaptureGaps(client, target))).toEqual([
      { source: 'public.measurements', detail: 'partition public.measurements_2028 has no truncate trigger, so a TRUNCATE of it alone would not reach the daemon' },
    ]);
    const removed = await withClient(server.url, (client) => uninstallLogicalCapture(client, target));
    expect(removed.partitionTriggersDropped).toBe(4);
    const { rows } = await admin.query(`SELECT FROM pg_trigger WHERE tgname LIKE 'tablecache_truncate_%' UNION ALL SELECT FROM pg_proc WHERE proname = 'tablecache_partition_truncate'`);
    expect(rows).toHaveLength(0);
  });

  it('refuses a source whose inheritance children the stream would not follow, unless they are sources too', async () => {
    await admin.query('CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE items_archive (PRIMARY KEY (id)) INHERITS (items)');
    const items = { schema: 'public', table: 'items', keyColumns: ['id'] };
    const error = await setupError(run(spec('inherited', [items])));
    expect(error.checks.map((check) => check.topic)).toEqual(['inheritance_child']);
    expect(error.message).toContain('public.items has inheritance children (public.items_archive)');
    const both = await run(spec('inherited', [items, { ...items, table: 'items_archive' }]));
    expect(both).toMatchObject({ publicationCreated: true, slotCreated: true, warnings: [] });
  });

  it('names ALTER ROLE … REPLICATION for a role that may not replicate', async () => {
    await admin.query(`CREATE ROLE plain_owner LOGIN; ALTER TABLE cities OWNER TO plain_owner`);
    try {
      const url = server.url.replace('postgres@', 'plain_owner@');
      const error = await setupError(withClient(url, (client) => installLogicalCapture(client, spec('role', [cities]))));
      expect(error.checks).toEqual([expect.objectContaining({ topic: 'replication_role', fix: expect.stringContaining('ALTER ROLE "plain_owner" REPLICATION;') })]);
      // Amazon RDS grants replication by membership of rds_replication instead of the attribute.
      await admin.query('CREATE ROLE rds_replication; GRANT rds_replication TO plain_owner');
      const dryRun = await withClient(url, (client) => installLogicalCapture(client, spec('role', [cities]), { dryRun: true }));
      expect(dryRun.slotStatements).toHaveLength(1);
    } finally {
      await admin.query(`ALTER TABLE cities OWNER TO postgres; DROP ROLE plain_owner; DROP ROLE IF EXISTS rds_replication`);
    }
  });

  it('names the wal_level change and the restart it needs on a server with wal_level = replica', async () => {
    const shared = await createTestDatabase('logical_capture_wal_level');
    try {
      const { rows } = await shared.pool.query<{ wal_level: string }>('SELECT current_setting($1) AS wal_level', ['wal_level']);
      expect(rows[0]!.wal_level).toBe('replica');
      await shared.pool.query('CREATE TABLE cities (city_id int PRIMARY KEY, name text)');
      const error = await setupError(withClient(shared.url, (client) => installLogicalCapture(client, spec('replica', [cities]))));
      expect(error.checks[0]).toMatchObject({ topic: 'wal_level', fix: expect.stringContaining('ALTER SYSTEM SET wal_level = logical; then restart Postgres') });
      const publications = await shared.pool.query('SELECT FROM pg_publication');
      expect(publications.rowCount).toBe(0);
    } finally {
      await shared.drop();
    }
  });
});

describe('readLogicalCaptureStatus', () => {
  it('reports lag and retained WAL growing with writes while nothing consumes the slot', async () => {
    const target = spec('lagging', [cities]);
    expect(await status(target)).toMatchObject({ slot: null, allCurrent: false, publication: { exists: false, missing: ['public.cities'] } });
    await run(target);
    const before = await status(target);
    expect(before).toMatchObject({ allCurrent: true, slot: { active: false, activePid: null, walStatus: 'reserved' }, publication: { missing: [], extra: [] } });
    await admin.query(`INSERT INTO cities SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g`);
    const after = await status(target);
    expect(after.slot!.lagBytes!).toBeGreaterThan(before.slot!.lagBytes! + 100_000);
    expect(after.slot!.retainedWalBytes!).toBeGreaterThan(before.slot!.retainedWalBytes! + 100_000);
    // Nothing streams, so Postgres knows no time for the lag.
    expect(after.slot!.lagSeconds).toBeNull();
    expect(after.identities).toEqual([{ source: 'public.cities', name: 'public.cities', kind: 'source', identity: 'default', identityColumns: ['city_id'] }]);
  });
});

describe('uninstallLogicalCapture', () => {
  it('refuses to drop a slot a process streams from, unless forced; then drops slot and publication', async () => {
    const target = spec('streamed', [cities]);
    await run(target);
    const service = new LogicalReplicationService({ connectionString: server.url }, { acknowledge: { auto: true, timeoutSeconds: 1 } });
    service.on('error', () => {});
    const streaming = service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [target.publication] }), target.slot).catch(() => undefined);
    try {
      const pid = await waitFor('the slot to be active', async () => (await status(target)).slot?.activePid ?? undefined);
      const refused = await withClient(server.url, (client) => uninstallLogicalCapture(client, target));
      expect(refused).toMatchObject({ refusedActivePid: pid, slotDropped: false, publicationDropped: false });
      expect((await objects(target)).slots).toBe(1);

      const forced = await withClient(server.url, (client) => uninstallLogicalCapture(client, target, { force: true }));
      expect(forced).toMatchObject({ refusedActivePid: null, slotDropped: true, publicationDropped: true });
      expect(forced.statements[0]).toBe(`SELECT pg_catalog.pg_terminate_backend(${pid})`);
      expect(await objects(target)).toEqual({ slots: 0, publications: [] });
    } finally {
      await service.stop().catch(() => undefined);
      await streaming;
    }
  });

  it('leaves a publication tablecache did not create', async () => {
    await admin.query('CREATE PUBLICATION foreign_pub FOR TABLE cities');
    const target = { slot: 'foreign_slot', publication: 'foreign_pub', sources: [cities] };
    const error = await setupError(run(target));
    expect(error.checks).toEqual([expect.objectContaining({ topic: 'publication', fix: expect.stringContaining('set capture.publication to another name') })]);
    const result = await withClient(server.url, (client) => uninstallLogicalCapture(client, target));
    expect(result).toMatchObject({ statements: [], keptForeignPublication: true, publicationDropped: false });
    await admin.query('DROP PUBLICATION foreign_pub');
  });
});

describe('logicalCaptureScript', () => {
  it('is idempotent: run twice, it leaves the publication with the configured tables and one slot', async () => {
    const target = spec('scripted', [users, cities]);
    const script = logicalCaptureScript(target);
    const [publicationPart, slotPart] = script.split(/;\n\n/);
    for (let round = 0; round < 2; round++) {
      await admin.query(publicationPart!);
      await admin.query(slotPart!);
    }
    expect(await objects(target)).toEqual({ slots: 1, publications: ['public.cities', 'public.users'] });
    await admin.query('ALTER PUBLICATION scripted_pub DROP TABLE users');
    await admin.query(publicationPart!);
    expect((await objects(target)).publications).toEqual(['public.cities', 'public.users']);
    // The script's publication is one install would leave alone: it carries install's comment.
    expect(await run(target)).toMatchObject({ publicationStatements: [], slotStatements: [] });
  });
});
