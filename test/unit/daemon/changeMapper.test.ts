import { describe, expect, it } from 'vitest';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { ChangeBatch } from '../../../daemon/changeBatch.ts';
import { ChangeMapper, type MappedTable } from '../../../daemon/changeMapper.ts';
import type { SourceConfig } from '../../../daemon/config/configSchema.ts';
import type { ChangePayload } from '../../../sql-triggers/payload.ts';

function source(name: string, key: string[], extra: Partial<SourceConfig> = {}): SourceConfig {
  const [schema, table] = name.split('.') as [string, string];
  return { name, schema, table, key, configPath: `tables.users.sources.${name}`, ...extra };
}

const usersSource = source('public.users', ['user_id'], { match: ['user_id'] });
const citiesSource = source('public.cities', ['city_id'], { match: ['city_id'] });
const friendsSource = source('public.friends', ['a', 'b'], { resolve: 'SELECT a FROM friends WHERE a = ANY($1) AND b = ANY($2)' });

const users: MappedTable = {
  name: 'users',
  indexes: new KeyColumnIndexes({ query: 'SELECT * FROM users_view', primaryKey: ['user_id'], lookups: [['user_id'], ['city_id']] }),
  sources: [usersSource, citiesSource, friendsSource],
};
const cities: MappedTable = {
  name: 'cities',
  indexes: new KeyColumnIndexes({ query: 'SELECT * FROM cities', primaryKey: ['city_id'], lookups: [['city_id']] }),
  sources: [source('public.cities', ['city_id'], { match: ['city_id'] })],
};

const head = { v: 1 as const, xid: '1', ts: 1 };

function keys(t: string, op: 'I' | 'U' | 'D', c: string[], k: unknown[][], ok?: unknown[][]): ChangePayload {
  return { ...head, t, op, c, k, ...(ok ? { ok } : {}) } as ChangePayload;
}

function mapAll(...payloads: ChangePayload[]): ChangeBatch {
  const mapper = new ChangeMapper([users, cities]);
  const batch = new ChangeBatch();
  for (const payload of payloads) mapper.map(payload, batch);
  return batch;
}

describe('ChangeMapper', () => {
  it('maps a changed source key to the cached primary key, deduplicating its forms', () => {
    const batch = mapAll(keys('public.users', 'U', ['user_id'], [[1], ['2']]), keys('public.users', 'U', ['user_id'], [['1'], [2]]));
    expect([...batch.table('users').keysByIndex.get('primary_key')!.keys()]).toEqual([1, 2]);
    expect(batch.receivedKeys).toBe(4);
    expect(batch.table('users').keyCount).toBe(2);
  });

  it('maps the old keys of an UPDATE that changed keys as well as the new ones', () => {
    const batch = mapAll(keys('public.users', 'U', ['user_id'], [[5]], [[4]]));
    expect([...batch.table('users').keysByIndex.get('primary_key')!.keys()]).toEqual([5, 4]);
  });

  it('maps a changed city to the city_id lookup of every cached table using it', () => {
    const batch = mapAll(keys('public.cities', 'U', ['city_id'], [[7]]));
    expect([...batch.table('users').keysByIndex.get('city_id')!.keys()]).toEqual([7]);
    expect([...batch.table('cities').keysByIndex.get('primary_key')!.keys()]).toEqual([7]);
  });

  it('picks the source key columns out of a payload carrying the union of several tables\' keys', () => {
    const batch = mapAll(keys('public.users', 'U', ['tenant', 'user_id'], [['t1', 9]]));
    expect([...batch.table('users').keysByIndex.get('primary_key')!.keys()]).toEqual([9]);
  });

  it('keeps the keys of a resolve source for its query', () => {
    const batch = mapAll(keys('public.friends', 'D', ['a', 'b'], [[1, 2], [1, 2], [3, 4]]));
    expect([...batch.table('users').resolveKeys.get(friendsSource)!.values()]).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('skips NULL keys, which match nothing', () => {
    const batch = mapAll(keys('public.cities', 'U', ['city_id'], [[null]]));
    expect(batch.table('users').keysByIndex.size).toBe(0);
    expect(batch.table('users').needsReload).toBe(false);
  });

  it('reloads the affected tables on TRUNCATE and on a coarse change, dropping their keys', () => {
    const mapper = new ChangeMapper([users, cities]);
    const batch = new ChangeBatch();
    mapper.map(keys('public.users', 'U', ['user_id'], [[1]]), batch);
    expect(mapper.map({ ...head, t: 'public.users', op: 'X', reason: 'too_large' }, batch)).toBe('reload');
    mapper.map(keys('public.users', 'U', ['user_id'], [[2]]), batch);
    expect(batch.table('users').needsReload).toBe(true);
    expect(batch.table('users').keysByIndex.size).toBe(0);
    expect([...batch.table('users').reloadReasons]).toEqual(['public.users changed in bulk (too_large)']);
    expect(mapper.map({ ...head, t: 'public.cities', op: 'T' }, batch)).toBe('reload');
    expect(batch.table('cities').needsReload).toBe(true);
  });

  it('reloads instead of guessing when the payload lacks a key column, and names it', () => {
    const batch = mapAll(keys('public.users', 'U', ['other'], [[1]]));
    expect([...batch.table('users').reloadReasons][0]).toMatch(/lacks key column\(s\) user_id.*triggers install/);
  });

  it('reloads when a key value cannot be matched (a JSON object)', () => {
    const batch = mapAll(keys('public.users', 'U', ['user_id'], [[{ a: 1 }]]));
    expect(batch.table('users').needsReload).toBe(true);
  });

  it('ignores tables no cached table uses', () => {
    const mapper = new ChangeMapper([users]);
    const batch = new ChangeBatch();
    expect(mapper.map(keys('public.other', 'I', ['id'], [[1]]), batch)).toBe('unrelated');
    expect(batch.isEmpty).toBe(true);
  });
});
