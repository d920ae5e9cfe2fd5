import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../examples/basic.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';

describe('examples/basic.ts', () => {
  let db: TestDatabase;
  let lines: string[];

  beforeAll(async () => {
    db = await createTestDatabase('example_basic');
    await db.pool.query(`CREATE TABLE public.bystander (id integer); INSERT INTO public.bystander VALUES (42)`);
    lines = [];
    await main({ postgresUrl: db.url, print: (line) => lines.push(line) });
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** The lines printed after `heading`, up to the next heading-like line (one that does not start with '{'). */
  function after(heading: string): string[] {
    const start = lines.indexOf(heading);
    expect(start, `"${heading}" was printed`).toBeGreaterThanOrEqual(0);
    const rest = lines.slice(start + 1);
    const end = rest.findIndex((line) => !line.startsWith('{'));
    return end === -1 ? rest : rest.slice(0, end);
  }

  it('prints users 1 and 2 from the loaded cache', () => {
    expect(after('Users with primary key 1 and 2:')).toEqual([
      "{ user_id: 1, city_id: 1, user_name: 'User 1', user_nickname: 'u1', city_name: 'City 1' }",
      "{ user_id: 2, city_id: 2, user_name: 'User 2', user_nickname: null, city_name: 'City 2' }",
    ]);
  });

  it('finds no user 3 before it is inserted', () => {
    const tried = lines.indexOf('Trying to find user with primary key 3:');
    expect(lines[tried + 1]).toBe('No user with primary key 3 exists.');
  });

  it('serves the stale name of user 1 until it is invalidated, and the new name after', () => {
    expect(after('User 1 has changed in the DB, but not yet in cache:')).toEqual([
      "{ user_id: 1, city_id: 1, user_name: 'User 1', user_nickname: 'u1', city_name: 'City 1' }",
    ]);
    expect(after('After invalidating, a refresh is triggered to update user 1:')).toEqual([
      "{ user_id: 1, city_id: 1, user_name: 'New Name', user_nickname: 'u1', city_name: 'City 1' }",
    ]);
  });

  it('prints user 3 after the manual refresh', () => {
    expect(lines.indexOf('Manually triggering a refresh.')).toBeLessThan(lines.indexOf('Newly inserted user 3:'));
    expect(after('Newly inserted user 3:')).toEqual([
      "{ user_id: 3, city_id: 1, user_name: 'User 3', user_nickname: null, city_name: 'City 1' }",
    ]);
  });

  it('tells the whole story in the order of the seed example', () => {
    expect(lines.filter((line) => !line.startsWith('{'))).toEqual([
      'Users with primary key 1 and 2:',
      'Trying to find user with primary key 3:',
      'No user with primary key 3 exists.',
      'User 1 has changed in the DB, but not yet in cache:',
      'After invalidating, a refresh is triggered to update user 1:',
      'Manually triggering a refresh.',
      'Newly inserted user 3:',
    ]);
  });

  it('drops its own schema and leaves everything else alone', async () => {
    const schemas = await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tablecache_example_basic'`);
    expect(schemas.rowCount).toBe(0);
    const bystander = await db.pool.query('SELECT id FROM public.bystander');
    expect(bystander.rows).toEqual([{ id: 42 }]);
  });
});
