import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { PostgresAccess } from '../../../lib/postgres/postgresAccess.ts';
import { RefreshDbAccess } from '../../../daemon/refreshDbAccess.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const QUERY = 'SELECT * FROM (SELECT u.* FROM "users" u) AS "cached" WHERE "cached"."user_id" = ANY($1)';

let db: TestDatabase;
let streaming: PostgresAccess;
let access: RefreshDbAccess;

beforeAll(async () => {
  db = await createTestDatabase('refresh_db_access');
  await db.pool.query(`
    CREATE TABLE "users" (user_id integer PRIMARY KEY, name text NOT NULL);
    INSERT INTO "users" SELECT i, 'User ' || i FROM generate_series(1, 200) i;
  `);
  streaming = new PostgresAccess({ pool: db.pool });
  access = new RefreshDbAccess(streaming, db.pool);
});

afterAll(async () => {
  await db.drop();
});

async function read(keys: readonly number[]): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const row of access.getRecords(new QueryArgsDbRecordsSpec(QUERY, [keys.map(String)]))) rows.push(row);
  return rows.sort((a, b) => Number(a['user_id']) - Number(b['user_id']));
}

describe('RefreshDbAccess', () => {
  it('reads the records of few and of many keys', async () => {
    expect(await read([3, 1])).toEqual([
      { user_id: 1, name: 'User 1' },
      { user_id: 3, name: 'User 3' },
    ]);
    const many = Array.from({ length: 150 }, (_, i) => i + 1);
    expect((await read(many)).map((row) => row['user_id'])).toEqual(many);
  });

  it('keeps refreshing after a source table gains a column (its prepared statement is prepared again)', async () => {
    // Prepared on every pooled connection, so that whichever one runs the next read holds the old statement.
    await Promise.all(Array.from({ length: 4 }, (_, i) => read([i + 1])));
    await db.pool.query(`ALTER TABLE "users" ADD COLUMN "nickname" text DEFAULT 'nick'`);
    for (let i = 0; i < 4; i++) expect(await read([5])).toEqual([{ user_id: 5, name: 'User 5', nickname: 'nick' }]);
  });
});
