import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { installTriggers } from '../../../sql-triggers/installTriggers.ts';
import type { ChangePayload } from '../../../sql-triggers/payload.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { ChangeListener } from './changeListener.ts';
import { createSeedSchema, seedTriggerSpec, withPoolClient } from './triggerFixtures.ts';

let db: TestDatabase;
let listener: ChangeListener;

/** Runs the statements in one transaction and returns its xid, as the payloads should carry it. */
async function commit(...statements: string[]): Promise<string> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    for (const statement of statements) await client.query(statement);
    const { rows } = await client.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await client.query('COMMIT');
    return rows[0]!.xid;
  } finally {
    client.release();
  }
}

/** What a keys payload must be, with the transaction's exact xid and any clock value. */
function keys(xid: string, t: string, op: 'I' | 'U' | 'D', c: string[], k: unknown[][], ok?: unknown[][]) {
  return { v: 1, t, op, xid, ts: expect.any(Number), c, k, ...(ok === undefined ? {} : { ok }) };
}

function byTable(payloads: ChangePayload[]): ChangePayload[] {
  return [...payloads].sort((a, b) => a.t.localeCompare(b.t));
}

beforeAll(async () => {
  db = await createTestDatabase('trigger_payloads');
  await createSeedSchema(db.pool);
  await db.pool.query(`
    CREATE TABLE events (id bigint, region text, amount numeric, happened_at timestamptz, PRIMARY KEY (id, region));
    CREATE TABLE notes (note_id integer PRIMARY KEY, author_id integer, body text);
  `);
  await withPoolClient(db.pool, (client) =>
    installTriggers(client, {
      ...seedTriggerSpec,
      sources: [
        ...seedTriggerSpec.sources.map((source) => (source.table === 'users' ? { ...source, columns: ['name'] } : source)),
        { schema: 'public', table: 'events', keyColumns: ['id', 'region', 'amount'] },
        { schema: 'public', table: 'notes', keyColumns: ['author_id'] },
      ],
    }),
  );
  listener = await ChangeListener.listen(db.url, seedTriggerSpec.channel);
});

afterAll(async () => {
  await listener?.close();
  await db?.drop();
});

beforeEach(async () => {
  // Each test starts with nothing pending.
  await listener.drain(db.pool);
});

describe('change payloads on the seed schema', () => {
  it('sends one payload with every new key for a multi-row INSERT', async () => {
    const xid = await commit(`INSERT INTO users(user_id, name) VALUES (3, 'User 3'), (4, 'User 4'), (5, 'User 5')`);
    expect(await listener.drain(db.pool)).toEqual([keys(xid, 'public.users', 'I', ['user_id'], [[3], [4], [5]])]);
  });

  it('sends the key of a row whose non-key column changed, with a clock value in epoch milliseconds', async () => {
    const before = Date.now();
    const xid = await commit(`UPDATE users SET name = 'Renamed' WHERE user_id = 1`);
    const payloads = await listener.drain(db.pool);
    expect(payloads).toEqual([keys(xid, 'public.users', 'U', ['user_id'], [[1]])]);
    // Same machine, so the database clock and ours agree to well within a minute.
    expect(Math.abs(payloads[0]!.ts - before)).toBeLessThan(60_000);
  });

  it('sends no ok list when an UPDATE keeps every key, for one row and for many', async () => {
    const one = await commit(`UPDATE cities SET name = 'Town 1' WHERE city_id = 1`);
    const both = await commit(`UPDATE cities SET name = name || '!'`);
    expect(await listener.drain(db.pool)).toEqual([
      keys(one, 'public.cities', 'U', ['city_id'], [[1]]),
      keys(both, 'public.cities', 'U', ['city_id'], [[1], [2]]),
    ]);
  });

  it('sends new keys in k and the old keys in ok when an UPDATE changes a key', async () => {
    const xid = await commit(`UPDATE users SET user_id = 20 WHERE user_id = 2`);
    // users_cities follows through ON UPDATE CASCADE, in the same transaction.
    expect(byTable(await listener.drain(db.pool))).toEqual([
      keys(xid, 'public.users', 'U', ['user_id'], [[20]], [[2]]),
      keys(xid, 'public.users_cities', 'U', ['user_id'], [[20]], [[2]]),
    ]);
    await commit(`UPDATE users SET user_id = 2 WHERE user_id = 20`);
    await listener.drain(db.pool);
    const many = await commit(`UPDATE users SET user_id = user_id + 100 WHERE user_id IN (1, 2)`);
    expect(byTable(await listener.drain(db.pool))).toEqual([
      keys(many, 'public.users', 'U', ['user_id'], [[101], [102]], [[1], [2]]),
      keys(many, 'public.users_cities', 'U', ['user_id'], [[101], [102]], [[1], [2]]),
    ]);
    await commit(`UPDATE users SET user_id = user_id - 100 WHERE user_id IN (101, 102)`);
  });

  it('sends the old keys of deleted rows', async () => {
    await commit(`INSERT INTO users(user_id, name) VALUES (30, 'a'), (31, 'b')`);
    await listener.drain(db.pool);
    const xid = await commit('DELETE FROM users WHERE user_id IN (30, 31)');
    expect(await listener.drain(db.pool)).toEqual([keys(xid, 'public.users', 'D', ['user_id'], [[30], [31]])]);
  });

  it('sends a truncate payload without keys for TRUNCATE', async () => {
    const xid = await commit('TRUNCATE notes');
    expect(await listener.drain(db.pool)).toEqual([{ v: 1, t: 'public.notes', op: 'T', xid, ts: expect.any(Number) }]);
  });

  it('sends one payload per statement of a transaction, with distinct keys only', async () => {
    const xid = await commit(
      `INSERT INTO notes VALUES (1, 7, 'a'), (2, 7, 'b'), (3, 8, 'c')`,
      `UPDATE notes SET body = 'changed' WHERE author_id = 7`,
      `DELETE FROM notes WHERE note_id = 3`,
    );
    expect(await listener.drain(db.pool)).toEqual([
      keys(xid, 'public.notes', 'I', ['author_id'], [[7], [8]]),
      keys(xid, 'public.notes', 'U', ['author_id'], [[7]]),
      keys(xid, 'public.notes', 'D', ['author_id'], [[8]]),
    ]);
  });

  it('sends nothing for an UPDATE that changes only columns outside the source\'s columns, or changes nothing', async () => {
    await commit(`UPDATE users SET nickname = 'new nickname' WHERE user_id = 1`);
    await commit(`UPDATE users SET name = name`);
    await commit(`UPDATE cities SET name = 'x' WHERE false`);
    expect(await listener.drain(db.pool)).toEqual([]);
    const xid = await commit(`UPDATE users SET nickname = 'again', name = 'Changed' WHERE user_id IN (1, 2)`);
    expect(await listener.drain(db.pool)).toEqual([keys(xid, 'public.users', 'U', ['user_id'], [[1], [2]])]);
  });

  it('sends nothing for a rolled-back transaction', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE cities SET name = 'rolled back'`);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await listener.drain(db.pool)).toEqual([]);
  });

  it('carries bigint and numeric keys as strings, other values as JSON, NULL as null, in key column order', async () => {
    const xid = await commit(`INSERT INTO events VALUES
      (9007199254740993, 'eu "west"', 12.50, now()),
      (1, 'ünïcode', NULL, now())`);
    const payloads = await listener.drain(db.pool);
    expect(payloads).toEqual([keys(xid, 'public.events', 'I', ['id', 'region', 'amount'], expect.any(Array))]);
    const [payload] = payloads;
    expect(payload?.op === 'I' && [...payload.k].sort()).toEqual([
      ['1', 'ünïcode', null],
      ['9007199254740993', 'eu "west"', '12.50'],
    ]);
  });
});
