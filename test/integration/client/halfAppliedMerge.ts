import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import type { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { writerScripts } from '../../../lib/redis/scripts/writerScripts.ts';

/**
 * Runs `storage.scratchMerge()` and drops the writer's connection after the
 * merge's first script call, as if the writer died there: readers then see
 * the merge through the overlay until the next writer finishes it. Needs a
 * writer opened on `connection` with a `mergeBatchSize` smaller than the
 * staged changes.
 */
export async function mergeHalfWayAndDie(connection: Redis, storage: RedisStorageTable<unknown>): Promise<void> {
  const callBuffer = connection.callBuffer.bind(connection);
  let mergeSteps = 0;
  connection.callBuffer = ((...args: Parameters<Redis['callBuffer']>) => {
    if (args[1] === writerScripts.mergeStep.sha && ++mergeSteps === 2) connection.disconnect();
    return callBuffer(...args);
  }) as Redis['callBuffer'];
  await expect(storage.scratchMerge()).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
}
