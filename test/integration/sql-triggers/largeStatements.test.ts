import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { installTriggers } from '../../../sql-triggers/installTriggers.ts';
import { MAX_PAYLOAD_BYTES, type ChangePayload, type KeysChangedPayload } from '../../../sql-triggers/payload.ts';
import type { SourceTableSpec } from '../../../sql-triggers/triggerSpec.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { ChangeListener } from './changeListener.ts';
import { withPoolClient } from './triggerFixtures.ts';

let db: TestDatabase;
let listener: ChangeListener;
const channel = 'tablecache_changes';
const MAX_KEYS = 5000;
const MAX_NOTIFICATIONS = 16;
// Kept in `npm test` at full size: a narrow table makes the million-row UPDATE take seconds.
const MILLION = 1_000_000;

const sources: SourceTableSpec[] = [
  { schema: 'public', table: 'numbers', keyColumns: ['id'] },
  { schema: 'public', table: 'wide_keys', keyColumns: ['k'] },
  { schema: 'public', table: 'counters', keyColumns: ['id'] },
  { schema: 'public', table: 'fragile', keyColumns: ['id', 'code'] },
  { schema: 'public', table: 'renumbered', keyColumns: ['id'] },
];

function keysPayloads(payloads: ChangePayload[]): KeysChangedPayload[] {
  return payloads.filter((payload): payload is KeysChangedPayload => payload.op === 'I' || payload.op === 'U' || payload.op === 'D');
}

beforeAll(async () => {
  db = await createTestDatabase('trigger_large');
  await db.pool.query(`
    CREATE TABLE numbers (id integer PRIMARY KEY, v integer NOT NULL DEFAULT 0);
    CREATE TABLE wide_keys (k text PRIMARY KEY, v integer NOT NULL DEFAULT 0);
    CREATE TABLE counters (id integer NOT NULL, v integer NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);
    CREATE TABLE fragile (id integer PRIMARY KEY, code text);
    CREATE TABLE renumbered (id integer PRIMARY KEY);
  `);
  await withPoolClient(db.pool, (client) =>
    installTriggers(client, { schema: 'tablecache', channel, sources, maxKeysPerStatement: MAX_KEYS, maxNotificationsPerStatement: MAX_NOTIFICATIONS }),
  );
  listener = await ChangeListener.listen(db.url, channel);
});

afterAll(async () => {
  await listener?.close();
  await db?.drop();
});

beforeEach(async () => {
  await listener.drain(db.pool);
});

describe('statements too large for one payload', () => {
  it('splits a statement\'s keys over several payloads, each under the limit, together holding every key once', async () => {
    await db.pool.query('INSERT INTO numbers(id) SELECT g FROM generate_series(1, 4000) AS g');
    const raw = await listener.drainRaw(db.pool);
    expect(raw.length).toBeGreaterThan(1);
    for (const text of raw) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const payloads = keysPayloads(raw.map((text) => JSON.parse(text) as ChangePayload));
    expect(payloads).toHaveLength(raw.length);
    const all = payloads.flatMap((payload) => payload.k.map(([id]) => id));
    expect(all).toHaveLength(4000);
    expect(new Set(all)).toEqual(new Set(Array.from({ length: 4000 }, (_, index) => index + 1)));
  });

  it('splits an UPDATE that changes many keys, new keys in k and old ones in ok across the parts', async () => {
    await db.pool.query('INSERT INTO renumbered SELECT g FROM generate_series(1, 2000) AS g');
    await listener.drain(db.pool);
    await db.pool.query('UPDATE renumbered SET id = id + 10000');
    const raw = await listener.drainRaw(db.pool);
    expect(raw.length).toBeGreaterThan(1);
    for (const text of raw) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const payloads = keysPayloads(raw.map((text) => JSON.parse(text) as ChangePayload));
    expect(payloads.every((payload) => payload.op === 'U')).toBe(true);
    const newKeys = payloads.flatMap((payload) => payload.k.map(([id]) => id)).sort((a, b) => Number(a) - Number(b));
    const oldKeys = payloads.flatMap((payload) => (payload.ok ?? []).map(([id]) => id)).sort((a, b) => Number(a) - Number(b));
    expect(newKeys).toEqual(Array.from({ length: 2000 }, (_, index) => index + 10_001));
    expect(oldKeys).toEqual(Array.from({ length: 2000 }, (_, index) => index + 1));
  });

  it('splits 2 KB keys so that every payload stays under the limit', async () => {
    await db.pool.query(`INSERT INTO wide_keys(k) SELECT lpad(g::text, 2048, 'x') FROM generate_series(1, 30) AS g`);
    const raw = await listener.drainRaw(db.pool);
    for (const text of raw) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const keys = keysPayloads(raw.map((text) => JSON.parse(text) as ChangePayload)).flatMap((payload) => payload.k.map(([k]) => k));
    expect(keys.sort()).toEqual(Array.from({ length: 30 }, (_, index) => `${'x'.repeat(2048 - String(index + 1).length)}${index + 1}`).sort());
    const updated = await db.pool.query(`UPDATE wide_keys SET v = v + 1`);
    expect(updated.rowCount).toBe(30);
    expect((await listener.drainRaw(db.pool)).every((text) => Buffer.byteLength(text) <= MAX_PAYLOAD_BYTES)).toBe(true);
  });

  it('sends one table-changed payload when the keys would need more notifications than the bound', async () => {
    // 2 KB keys: three per payload, so 100 of them need more than 16 payloads.
    await db.pool.query(`INSERT INTO wide_keys(k) SELECT lpad(g::text, 2048, 'y') FROM generate_series(1, 100) AS g`);
    expect(await listener.drain(db.pool)).toEqual([
      { v: 1, t: 'public.wide_keys', op: 'X', xid: expect.any(String), ts: expect.any(Number), reason: 'too_large' },
    ]);
  });

  it('sends one table-changed payload for a single key larger than a payload, and the statement succeeds', async () => {
    const inserted = await db.pool.query(`INSERT INTO wide_keys(k) VALUES (repeat('z', 9000))`);
    expect(inserted.rowCount).toBe(1);
    expect(await listener.drain(db.pool)).toEqual([expect.objectContaining({ t: 'public.wide_keys', op: 'X', reason: 'too_large' })]);
  });

  it('sends one table-changed payload for a statement with more rows than maxKeysPerStatement', async () => {
    await db.pool.query(`INSERT INTO numbers(id) SELECT g FROM generate_series(100001, ${100_000 + MAX_KEYS + 1}) AS g`);
    expect(await listener.drain(db.pool)).toEqual([expect.objectContaining({ t: 'public.numbers', op: 'X', reason: 'too_large' })]);
  });

  it(`updates ${MILLION.toLocaleString('en')} rows with a single table-changed payload`, async () => {
    await db.pool.query(`INSERT INTO counters(id) SELECT g FROM generate_series(1, ${MILLION}) AS g`);
    await listener.drain(db.pool);
    const updated = await db.pool.query('UPDATE counters SET v = v + 1');
    expect(updated.rowCount).toBe(MILLION);
    expect(await listener.drain(db.pool)).toEqual([
      { v: 1, t: 'public.counters', op: 'X', xid: expect.any(String), ts: expect.any(Number), reason: 'too_large' },
    ]);
  });
});

describe('a trigger that cannot compute its payload', () => {
  it('sends a table-changed payload with reason error instead of failing the statement', async () => {
    await db.pool.query(`INSERT INTO fragile VALUES (1, 'a')`);
    await listener.drain(db.pool);
    // Function bodies do not depend on columns, so the key column can be dropped under the trigger.
    await db.pool.query('ALTER TABLE fragile DROP COLUMN code');
    const updated = await db.pool.query('UPDATE fragile SET id = 2');
    expect(updated.rowCount).toBe(1);
    expect(await listener.drain(db.pool)).toEqual([
      { v: 1, t: 'public.fragile', op: 'X', xid: expect.any(String), ts: expect.any(Number), reason: 'error' },
    ]);
  });
});

describe('a nearly full notification queue', () => {
  it('makes the triggers fall silent rather than risk failing commits', async () => {
    await withPoolClient(db.pool, (client) =>
      installTriggers(client, { schema: 'tablecache', channel, sources, maxKeysPerStatement: MAX_KEYS, maxNotificationsPerStatement: MAX_NOTIFICATIONS, maxQueueUsage: 0 }),
    );
    try {
      await db.pool.query('INSERT INTO numbers(id) VALUES (-1)');
      expect(await listener.drain(db.pool)).toEqual([]);
    } finally {
      await withPoolClient(db.pool, (client) =>
        installTriggers(client, { schema: 'tablecache', channel, sources, maxKeysPerStatement: MAX_KEYS, maxNotificationsPerStatement: MAX_NOTIFICATIONS }),
      );
    }
    await db.pool.query('INSERT INTO numbers(id) VALUES (-2)');
    expect(await listener.drain(db.pool)).toEqual([expect.objectContaining({ t: 'public.numbers', op: 'I', k: [[-2]] })]);
  });
});
