import { describe, expect, it } from 'vitest';
import { parseConfig, triggerSpecFromConfig } from '../../../daemon/config/index.ts';
import { nearestNames } from '../../../daemon/config/nearestNames.ts';

describe('triggerSpecFromConfig', () => {
  it('gives a table that several cached tables read one trigger with the union of their keys', () => {
    const config = parseConfig(
      {
        postgres: { url: 'postgres://localhost/app' },
        redis: { url: 'redis://localhost' },
        triggers: { channel: 'changes', maxKeysPerStatement: 100 },
        tables: {
          users: {
            query: 'SELECT 1',
            primaryKey: 'user_id',
            sources: { users: { key: 'user_id', columns: ['name'] }, cities: { key: 'city_id', match: 'city_id', columns: ['name'] } },
          },
          nicknames: {
            query: 'SELECT 1',
            primaryKey: 'nickname',
            sources: { users: { key: 'nickname', columns: ['nickname'] }, cities: { key: 'name', match: 'city_name' } },
          },
        },
      },
      { file: 'merged.yaml', env: {} },
    );
    expect(triggerSpecFromConfig(config)).toEqual({
      schema: 'tablecache',
      channel: 'changes',
      maxKeysPerStatement: 100,
      maxNotificationsPerStatement: 16,
      maxQueueUsage: 0.5,
      sources: [
        { schema: 'public', table: 'users', keyColumns: ['user_id', 'nickname'], columns: ['name', 'nickname'] },
        // One cached table cares about every column of cities, so no filter.
        { schema: 'public', table: 'cities', keyColumns: ['city_id', 'name'] },
      ],
    });
  });
});

describe('nearestNames', () => {
  it('orders candidates by edit distance, ignoring case', () => {
    expect(nearestNames('public.user', ['public.cities', 'public.users', 'app.Users'])).toEqual(['public.users', 'public.cities', 'app.Users']);
    expect(nearestNames('usr', ['orders', 'Users', 'cities'], 2)).toEqual(['Users', 'orders']);
  });
});
