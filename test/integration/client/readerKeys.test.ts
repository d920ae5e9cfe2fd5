import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { KeyColumnIndexes, PRIMARY_KEY_INDEX } from '../../../lib/core/keyColumnIndexes.ts';
import { PostgresAccess } from '../../../lib/postgres/postgresAccess.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';

type Row = Record<string, unknown>;

const prefix = uniqueRedisPrefix('reader_keys');
let db: TestDatabase;
let access: PostgresAccess;
let redis: Redis;
const closing: { close(): Promise<void> }[] = [];

/** Loads `query` as the daemon does (KeyColumnIndexes over the query, a RedisStorageTable) and opens a reader on it. */
async function cached(table: string, query: string, primaryKey: string[]): Promise<TableReader<Row>> {
  const indexes = new KeyColumnIndexes({ query, primaryKey, lookups: [] });
  const storage = await RedisStorageTable.open<Row>({ redis, table, keyPrefix: prefix, scorer: indexes });
  closing.push(storage);
  await new CachedTable(indexes, access, storage).load(PRIMARY_KEY_INDEX, { all: true });
  const reader = await openReader<Row>({ redis, table, keyPrefix: prefix });
  closing.push(reader);
  return reader;
}

beforeAll(async () => {
  db = await createTestDatabase('reader_keys');
  access = new PostgresAccess({ connectionString: db.url });
  redis = new Redis(testRedisUrl());
  await db.pool.query(`
    CREATE TABLE prices (price numeric(10, 2) PRIMARY KEY, label text);
    INSERT INTO prices VALUES (1.5, 'one and a half'), (2, 'two');
    CREATE TABLE things (thing_id uuid PRIMARY KEY, label text);
    INSERT INTO things VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'thing');
    CREATE TABLE pairs (a integer, b text, label text, PRIMARY KEY (a, b));
    INSERT INTO pairs VALUES (1, 'x', 'one x'), (2, 'y', 'two y');
  `);
});

afterAll(async () => {
  for (const thing of closing.reverse()) await thing.close();
  await deleteKeysWithPrefix(redis, prefix);
  redis.disconnect();
  await access.close();
  await db.drop();
});

describe('reader keys, in the form the README documents', () => {
  it('finds a numeric key by its text with the column scale, as Postgres prints it', async () => {
    const prices = await cached('prices', 'SELECT * FROM prices', ['price']);
    expect(await prices.get('1.50')).toEqual({ price: '1.50', label: 'one and a half' });
    expect(await prices.get('2.00')).toEqual({ price: '2.00', label: 'two' });
    // The documented limit: the reader cannot know the scale (a text key "1.50" is not "1.5").
    expect(await prices.get(1.5)).toBeUndefined();
  });

  it('finds a key cast to float8 in the query by any spelling of the number', async () => {
    const prices = await cached('prices_float', 'SELECT price::float8 AS price, label FROM prices', ['price']);
    expect(await prices.get(1.5)).toMatchObject({ label: 'one and a half' });
    expect(await prices.get('2')).toMatchObject({ label: 'two' });
    expect(await prices.get(2n)).toMatchObject({ label: 'two' });
  });

  it('finds a uuid key in lower case, as Postgres prints it', async () => {
    const things = await cached('things', 'SELECT * FROM things', ['thing_id']);
    expect(await things.get('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).toMatchObject({ label: 'thing' });
    expect(await things.get('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')).toBeUndefined();
  });

  it('takes a composite key as an array of one value per key column, normalised like the writer', async () => {
    const pairs = await cached('pairs', 'SELECT * FROM pairs', ['a', 'b']);
    expect(await pairs.get([1, 'x'])).toEqual({ a: 1, b: 'x', label: 'one x' });
    expect(await pairs.get(['2', 'y'])).toEqual({ a: 2, b: 'y', label: 'two y' });
    expect(await pairs.getMany([[1, 'x'], [2, 'x'], [2n, 'y']])).toEqual([{ a: 1, b: 'x', label: 'one x' }, undefined, { a: 2, b: 'y', label: 'two y' }]);
  });

  it('refuses a key that no record can have, saying what to pass', async () => {
    const pairs = await cached('pairs_errors', 'SELECT * FROM pairs', ['a', 'b']);
    await expect(pairs.get([1, null as unknown as string])).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT', message: expect.stringContaining('one per key column') });
    await expect(pairs.get(new Date() as unknown as string)).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT', message: expect.stringContaining('Cast such a key column to text') });
  });
});
