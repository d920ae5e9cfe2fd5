import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { describeStorageConformance } from '../../support/storageConformance.ts';

let redis: Redis;
const prefix = uniqueRedisPrefix('conformance');
let tableNumber = 0;

beforeAll(async () => {
  redis = new Redis(testRedisUrl(), { lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

describeStorageConformance('RedisStorageTable', async (scorer) => {
  const storage = await RedisStorageTable.open({ redis, table: `t${++tableNumber}`, keyPrefix: prefix, scorer });
  return { storage, cleanup: () => storage.close() };
});

// The same contract again with merges applied in many small script calls, so
// that every case also runs through the overlay readers see during a big merge
// (with the defaults, the suite's small sessions stay in the writer's memory
// until the merge applies them in one call).
describeStorageConformance('RedisStorageTable merging in batches of 1', async (scorer) => {
  const storage = await RedisStorageTable.open({ redis, table: `t${++tableNumber}`, keyPrefix: prefix, scorer, mergeBatchSize: 1, writeBatchSize: 2 });
  return { storage, cleanup: () => storage.close() };
});
