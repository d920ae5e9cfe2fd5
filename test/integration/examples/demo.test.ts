import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type DemoResult } from '../../../examples/demo.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl } from '../../support/redis.ts';

const USER_1 = "{ user_id: 1, city_id: 1, user_name: 'User 1', user_nickname: 'u1', city_name: 'City 1' }";
const USER_2 = "{ user_id: 2, city_id: 2, user_name: 'User 2', user_nickname: null, city_name: 'City 2' }";
const USER_1_RENAMED = "{ user_id: 1, city_id: 1, user_name: 'New Name', user_nickname: 'u1', city_name: 'City 1' }";
const USER_3 = "{ user_id: 3, city_id: 1, user_name: 'User 3', user_nickname: null, city_name: 'City 1' }";
const USER_1_NEW_CITY = "{ user_id: 1, city_id: 1, user_name: 'New Name', user_nickname: 'u1', city_name: 'New City' }";
const USER_3_NEW_CITY = "{ user_id: 3, city_id: 1, user_name: 'User 3', user_nickname: null, city_name: 'New City' }";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('example_demo');
  await db.pool.query('CREATE TABLE public.bystander (id integer); INSERT INTO public.bystander VALUES (42)');
});

afterAll(async () => {
  await db?.drop();
});

/** The lines after the line matching `heading`, up to the next empty line. */
function after(lines: readonly string[], heading: RegExp): string[] {
  const start = lines.findIndex((line) => heading.test(line));
  expect(start, `a line matching ${heading} was printed`).toBeGreaterThanOrEqual(0);
  const rest = lines.slice(start + 1);
  const end = rest.indexOf('');
  return (end === -1 ? rest : rest.slice(0, end)).map((line) => line.trim());
}

function tellsTheSeedStory(run: () => { lines: string[]; result: DemoResult }): void {
  it('shows users 1 and 2 loaded, and no user 3', () => {
    const { lines } = run();
    expect(after(lines, /^A reader sees users 1 and 2:$/)).toEqual([USER_1, USER_2, 'A reader looks for user 3: there is none.']);
  });

  it('shows user 1 renamed, user 3 inserted and the city renamed on both of its users, each with its commit-to-visible latency', () => {
    const { lines, result } = run();
    expect(after(lines, /^4\. UPDATE users SET name = 'New Name' WHERE user_id = 1$/)).toEqual([
      expect.stringMatching(/^The reader sees user 1 renamed, \d+\.\d ms after the commit:$/),
      USER_1_RENAMED,
    ]);
    expect(after(lines, /^5\. INSERT user 3/)).toEqual([expect.stringMatching(/^The reader sees the new user 3, \d+\.\d ms after the commit:$/), USER_3]);
    expect(after(lines, /^6\. UPDATE cities SET name = 'New City' WHERE city_id = 1$/)).toEqual([
      expect.stringMatching(/^The reader sees the city's new name on both of its users, \d+\.\d ms after the commit:$/),
      USER_1_NEW_CITY,
      USER_3_NEW_CITY,
    ]);
    expect(result.latenciesMs).toHaveLength(3);
    for (const latency of result.latenciesMs) expect(latency).toBeGreaterThan(0);
  });
}

describe('examples/demo.ts with Redis', () => {
  const lines: string[] = [];
  let result: DemoResult;

  beforeAll(async () => {
    result = await main({ postgresUrl: db.url, redisUrl: testRedisUrl(), print: (line) => lines.push(line), logger: pino({ level: 'silent' }) });
  });

  tellsTheSeedStory(() => ({ lines, result }));

  it('says which Postgres and Redis it used and where the daemon keeps the table', () => {
    expect(result).toMatchObject({ postgres: 'given', storage: 'redis' });
    expect(lines).toContain(`Redis:    ${testRedisUrl()} (as given)`);
    expect(lines.find((line) => line.startsWith('Postgres: '))).toMatch(/\(as given\)$/);
    expect(lines.find((line) => line.startsWith('3. '))).toMatch(/loaded 2 users into Redis at redis:\/\//);
  });

  it('removes its schema, triggers and Redis keys, and leaves everything else alone', async () => {
    expect(lines.at(-1)).toBe("Cleaned up: stopped the daemon, deleted the demo's Redis keys, dropped schema tablecache_demo.");
    const schemas = await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tablecache_demo'`);
    expect(schemas.rowCount).toBe(0);
    expect((await db.pool.query('SELECT id FROM public.bystander')).rows).toEqual([{ id: 42 }]);
    const redis = new Redis(testRedisUrl());
    try {
      const [, tableKeys] = await redis.scan('0', 'MATCH', `{${result.keyPrefix}*`, 'COUNT', 10_000);
      const [, otherKeys] = await redis.scan('0', 'MATCH', `${result.keyPrefix}*`, 'COUNT', 10_000);
      expect([...tableKeys, ...otherKeys]).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});

describe('examples/demo.ts without Redis', () => {
  const lines: string[] = [];
  let result: DemoResult;

  beforeAll(async () => {
    result = await main({ postgresUrl: db.url, redisUrl: null, print: (line) => lines.push(line), logger: pino({ level: 'silent' }) });
  });

  tellsTheSeedStory(() => ({ lines, result }));

  it('keeps the table in the process and says so', () => {
    expect(result.storage).toBe('in-process');
    expect(lines).toContain('Redis:    - (none: the in-process storage, as asked)');
    expect(lines.find((line) => line.startsWith('3. '))).toMatch(/loaded 2 users into in-process memory/);
    expect(lines.at(-1)).toBe('Cleaned up: stopped the daemon, dropped schema tablecache_demo.');
  });
});
