import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { fileRedis } from '../../support/redis.ts';
import { describeStorageConformance } from '../../support/storageConformance.ts';

const { redis, prefix } = fileRedis('conformance');
let tableNumber = 0;

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
