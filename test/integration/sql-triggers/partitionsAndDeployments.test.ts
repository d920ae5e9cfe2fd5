import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installChildTriggers, installTriggers, installTriggersScript } from '../../../sql-triggers/installTriggers.ts';
import { triggerFunctionName, triggerName, type TriggerEvent } from '../../../sql-triggers/sourceTriggers.ts';
import { readTriggerStatus } from '../../../sql-triggers/triggerStatus.ts';
import type { TriggerSpec } from '../../../sql-triggers/triggerSpec.ts';
import { uninstallTriggers } from '../../../sql-triggers/uninstallTriggers.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { ChangeListener } from './changeListener.ts';
import { createSeedSchema, seedTriggerSpec, withPoolClient } from './triggerFixtures.ts';

let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase('trigger_partitions');
});

afterEach(async () => {
  await db.drop();
});

const install = (spec: TriggerSpec) => withPoolClient(db.pool, (client) => installTriggers(client, spec));
const status = (spec: TriggerSpec) => withPoolClient(db.pool, (client) => readTriggerStatus(client, spec));

const ordersSpec: TriggerSpec = {
  schema: 'tablecache',
  channel: 'tablecache_changes',
  sources: [
    { schema: 'public', table: 'orders', keyColumns: ['order_id'] },
    { schema: 'public', table: 'events', keyColumns: ['event_id'] },
  ],
};

/** `orders` partitioned two levels deep; `events` with an inheritance child. */
async function createPartitionedSchema(): Promise<void> {
  await db.pool.query(`
    CREATE TABLE orders (order_id integer NOT NULL, note text) PARTITION BY RANGE (order_id);
    CREATE TABLE orders_low PARTITION OF orders FOR VALUES FROM (0) TO (100);
    CREATE TABLE orders_high PARTITION OF orders FOR VALUES FROM (100) TO (1000) PARTITION BY RANGE (order_id);
    CREATE TABLE orders_high_a PARTITION OF orders_high FOR VALUES FROM (100) TO (500);
    CREATE TABLE events (event_id integer PRIMARY KEY, note text);
    CREATE TABLE audit_events (extra text) INHERITS (events);
  `);
}

const opsAndKeys = (payloads: Awaited<ReturnType<ChangeListener['drain']>>) =>
  payloads.map((payload) => (payload.op === 'T' || payload.op === 'X' ? [payload.op, payload.t] : [payload.op, payload.t, payload.k]));

describe('partitions and inheritance children', () => {
  it('gets triggers on every partition and child, so direct writes to them notify as the source table', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await using listener = await ChangeListener.listen(db.url, ordersSpec.channel);
    await db.pool.query(`INSERT INTO orders VALUES (1, 'via parent')`);
    await db.pool.query(`INSERT INTO orders_low VALUES (2, 'direct')`);
    await db.pool.query(`UPDATE orders_high_a SET note = 'x' WHERE order_id = 0`);
    await db.pool.query(`INSERT INTO orders_high_a VALUES (200, 'two levels down')`);
    await db.pool.query(`INSERT INTO audit_events VALUES (7, 'child', 'e')`);
    await db.pool.query(`DELETE FROM audit_events WHERE event_id = 7`);
    expect(opsAndKeys(await listener.drain(db.pool))).toEqual([
      ['I', 'public.orders', [[1]]],
      ['I', 'public.orders', [[2]]],
      ['I', 'public.orders', [[200]]],
      ['I', 'public.events', [[7]]],
      ['D', 'public.events', [[7]]],
    ]);
    const current = await status(ordersSpec);
    expect(current.allCurrent).toBe(true);
    expect(current.sources.map((source) => [source.source, source.children.map((child) => [child.name, child.kind, child.state])])).toEqual([
      [
        'public.orders',
        [
          ['public.orders_high', 'partition', 'current'],
          ['public.orders_high_a', 'partition', 'current'],
          ['public.orders_low', 'partition', 'current'],
        ],
      ],
      ['public.events', [['public.audit_events', 'inheritance_child', 'current']]],
    ]);
  });

  it('reports a partition created after install as missing, and installChildTriggers gives it triggers without touching anything else', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await db.pool.query(`CREATE TABLE orders_mid PARTITION OF orders_high FOR VALUES FROM (500) TO (1000)`);
    const before = await status(ordersSpec);
    expect(before.allCurrent).toBe(false);
    expect(before.sources[0]).toMatchObject({ state: 'missing', detail: 'no triggers on partition public.orders_mid' });
    expect(before.sources[0]!.children.find((child) => child.name === 'public.orders_mid')).toMatchObject({ state: 'missing', ownedByCurrentRole: true });

    const result = await withPoolClient(db.pool, (client) => installChildTriggers(client, ordersSpec));
    expect(result.installedTables).toEqual(['public.orders_mid']);
    expect(result.notOwnedTables).toEqual([]);
    expect(result.statements.every((statement) => statement.includes('ON "public"."orders_mid"'))).toBe(true);
    expect((await status(ordersSpec)).allCurrent).toBe(true);

    await using listener = await ChangeListener.listen(db.url, ordersSpec.channel);
    await db.pool.query(`INSERT INTO orders_mid VALUES (600, 'new partition')`);
    expect(opsAndKeys(await listener.drain(db.pool))).toEqual([['I', 'public.orders', [[600]]]]);
  });

  it('the printed install script (for migration tools) covers the partitions and children there are when it runs', async () => {
    await createPartitionedSchema();
    await db.pool.query(`BEGIN; ${installTriggersScript(ordersSpec)} COMMIT;`);
    expect((await status(ordersSpec)).allCurrent).toBe(true);
    expect((await install(ordersSpec)).statements).toEqual([]);
    // Running it again changes nothing either.
    await db.pool.query(`BEGIN; ${installTriggersScript(ordersSpec)} COMMIT;`);
    expect((await status(ordersSpec)).allCurrent).toBe(true);
  });

  it('installChildTriggers only reports a new partition its role does not own, for its owner to install', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await db.pool.query(`CREATE TABLE orders_mid PARTITION OF orders_high FOR VALUES FROM (500) TO (1000)`);
    const role = `tc_reader_${randomBytes(4).toString('hex')}`;
    await db.pool.query(`CREATE ROLE ${role} LOGIN`);
    const url = new URL(db.url);
    url.username = role;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      const result = await installChildTriggers(client, ordersSpec);
      expect(result).toEqual({ statements: [], installedTables: [], notOwnedTables: ['public.orders_mid'] });
      const seen = await readTriggerStatus(client, ordersSpec);
      expect(seen.sources[0]!.children.find((child) => child.name === 'public.orders_mid')).toMatchObject({ state: 'missing', ownedByCurrentRole: false });
    } finally {
      await client.end();
      await db.pool.query(`DROP ROLE ${role}`);
    }
  });

  it('installChildTriggers leaves a disabled partition trigger alone: disabling may be the operator\'s decision', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await db.pool.query(`ALTER TABLE orders_low DISABLE TRIGGER tablecache_insert`);
    const result = await withPoolClient(db.pool, (client) => installChildTriggers(client, ordersSpec));
    expect(result).toEqual({ statements: [], installedTables: [], notOwnedTables: [] });
    const disabled = await status(ordersSpec);
    expect(disabled.sources[0]).toMatchObject({ state: 'disabled', capturesChanges: false, detail: 'trigger(s) disabled on partition public.orders_low' });
  });

  it('install drops the triggers of a detached partition, which is no longer part of the source', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await db.pool.query(`ALTER TABLE orders DETACH PARTITION orders_low`);
    const detached = await status(ordersSpec);
    expect(detached.sources[0]).toMatchObject({ state: 'stale' });
    expect(detached.sources[0]!.detail).toContain('orders_low');
    await install(ordersSpec);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS count FROM pg_trigger WHERE tgrelid = 'orders_low'::regclass`);
    expect(rows).toEqual([{ count: 0 }]);
    expect((await status(ordersSpec)).allCurrent).toBe(true);
  });

  it('reports a dropped source table as missing, saying the table does not exist', async () => {
    await createPartitionedSchema();
    await install(ordersSpec);
    await db.pool.query('DROP TABLE audit_events; DROP TABLE events');
    expect((await status(ordersSpec)).sources[1]).toMatchObject({ source: 'public.events', state: 'missing', exists: false, detail: 'the table does not exist' });
  });
});

describe('two deployments on one database', () => {
  const other: TriggerSpec = { ...seedTriggerSpec, channel: 'other_changes', sources: seedTriggerSpec.sources.slice(0, 2) };

  it('install both, uninstall one: the other stays installed, current and notifying', async () => {
    await createSeedSchema(db.pool);
    await install(seedTriggerSpec);
    const second = await install(other);
    expect(second.removedSources).toEqual([]);
    expect((await status(seedTriggerSpec)).allCurrent).toBe(true);
    expect((await status(other)).allCurrent).toBe(true);
    // A second install of the first changes nothing of the second, and the reverse.
    expect((await install(seedTriggerSpec)).statements).toEqual([]);
    expect((await install(other)).statements).toEqual([]);

    await using first = await ChangeListener.listen(db.url, seedTriggerSpec.channel);
    await using otherListener = await ChangeListener.listen(db.url, other.channel);
    await db.pool.query(`UPDATE users SET name = 'Both' WHERE user_id = 1`);
    expect(opsAndKeys(await first.drain(db.pool))).toEqual([['U', 'public.users', [[1]]]]);
    expect(opsAndKeys(await otherListener.drain(db.pool))).toEqual([['U', 'public.users', [[1]]]]);

    const removed = await withPoolClient(db.pool, (client) => uninstallTriggers(client, other));
    expect([...removed.removedSources].sort()).toEqual(['public.users', 'public.users_cities']);
    expect(removed.schemaDropped).toBe(false);
    expect((await status(seedTriggerSpec)).allCurrent).toBe(true);
    await db.pool.query(`UPDATE users SET name = 'Only first' WHERE user_id = 1`);
    expect(opsAndKeys(await first.drain(db.pool))).toEqual([['U', 'public.users', [[1]]]]);
    expect(await otherListener.drain(db.pool)).toEqual([]);

    const last = await withPoolClient(db.pool, (client) => uninstallTriggers(client, seedTriggerSpec));
    expect(last.schemaDropped).toBe(true);
  });

  it('upgrades in place an install of a non-default channel made before deployments were namespaced', async () => {
    await createSeedSchema(db.pool);
    // What install generated before: the default channel's function and trigger names, and no channel in the comment.
    let legacy = installTriggersScript(other).replaceAll(',"channel":"other_changes"', '');
    for (const source of other.sources) legacy = legacy.replaceAll(triggerFunctionName(source, other.channel), triggerFunctionName(source));
    for (const event of ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as TriggerEvent[]) {
      legacy = legacy.replaceAll(`"${triggerName(other.schema, event, other.channel)}"`, `"${triggerName(other.schema, event)}"`);
    }
    await db.pool.query(`BEGIN; ${legacy} COMMIT;`);
    const before = await status(other);
    expect(before.sources.map((source) => source.state)).toEqual(['missing', 'missing', 'not_in_config', 'not_in_config']);

    const upgraded = await install(other);
    expect([...upgraded.removedSources].sort()).toEqual(['public.users', 'public.users_cities']);
    expect((await status(other)).allCurrent).toBe(true);
    const { rows } = await db.pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM pg_trigger WHERE NOT tgisinternal`);
    expect(rows).toEqual([{ count: 8 }]);
    await using listener = await ChangeListener.listen(db.url, other.channel);
    await db.pool.query(`UPDATE users_cities SET city_id = 2 WHERE user_id = 1`);
    expect(opsAndKeys(await listener.drain(db.pool))).toEqual([['U', 'public.users_cities', [[1]]]]);
    // The default channel's deployment sees nothing of it: none of its own is installed.
    expect((await status(seedTriggerSpec)).sources.map((source) => source.state)).toEqual(['missing', 'missing', 'missing']);
  });
});
