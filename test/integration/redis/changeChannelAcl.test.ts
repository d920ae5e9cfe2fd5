import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';

interface Row {
  id: number;
}

const scorer: RecordScorer<Row, number> = { indexNames: ['primary_key'], score: (_, row) => row.id, primaryKey: (row) => row.id };
const prefix = uniqueRedisPrefix('change_channel_acl');
const user = `tc_no_channel_${randomBytes(4).toString('hex')}`;
const password = randomBytes(8).toString('hex');
let admin: Redis;

beforeAll(async () => {
  admin = new Redis(testRedisUrl());
  // Keys of its prefix and every command, but no channel: an ACL written before writers published their steps.
  await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, 'resetchannels', `~{${prefix}*`, '+@all');
});

afterAll(async () => {
  await admin.call('ACL', 'DELUSER', user);
  await deleteKeysWithPrefix(admin, prefix);
  await admin.quit();
});

describe('a writer whose Redis user may not publish on the change channel', () => {
  it('is refused at open with TC_STORAGE_FAILED naming the channel rule to add, and holds no lease afterwards', async () => {
    const redis = new Redis(testRedisUrl(), { username: user, password });
    try {
      const opening = RedisStorageTable.open<Row>({ redis, table: 'users', keyPrefix: prefix, scorer });
      await expect(opening).rejects.toMatchObject({ code: 'TC_STORAGE_FAILED', message: expect.stringContaining(`&${new TableKeys('users', prefix).changes}`) });
      expect(await admin.exists(new TableKeys('users', prefix).lease)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
