import { describe, expect, it } from 'vitest';
import { BARRIER_MARK_TTL_MS, BarrierTimeoutError, barrierBehindKey, barrierMarkKey, waitForBarrier } from '../../../lib/client/barrier.ts';
import { deleteKeysWithPrefix, uniqueRedisPrefix, withRedis } from '../../support/redis.ts';

/** What waitForBarrier says when it times out, from what the daemon wrote beside the barrier (a real Redis). */
async function timeoutOf(behind: string | null): Promise<BarrierTimeoutError> {
  const keyPrefix = uniqueRedisPrefix('barrier-timeout');
  return withRedis(async (redis) => {
    try {
      if (behind !== null) await redis.set(barrierBehindKey(keyPrefix, 'b1'), behind, 'PX', BARRIER_MARK_TTL_MS);
      const error: unknown = await waitForBarrier(redis, 'b1', { keyPrefix, timeoutMs: 50 }).then(
        () => null,
        (rejection: unknown) => rejection,
      );
      expect(error).toBeInstanceOf(BarrierTimeoutError);
      return error as BarrierTimeoutError;
    } finally {
      await deleteKeysWithPrefix(redis, keyPrefix);
    }
  });
}

describe('waitForBarrier timing out', () => {
  it('names the tables the daemon wrote the barrier waits for, with the failing one’s error', async () => {
    const error = await timeoutOf(JSON.stringify([{ table: 'orders', reason: 'column "w" does not exist' }, { table: 'users' }]));
    expect(error.code).toBe('TC_TIMEOUT');
    expect(error.behindTables).toEqual([{ table: 'orders', reason: 'column "w" does not exist' }, { table: 'users' }]);
    expect(error.message).toBe(
      'Barrier b1 was not reached within 50 ms: the daemon has not applied it to table(s) orders (failing: column "w" does not exist), ' +
        'users (its step is still running). Read from Postgres instead, or wait longer.',
    );
  });

  it('says the daemon is behind, down or elsewhere when it wrote nothing, or something unreadable', async () => {
    for (const behind of [null, 'not json', '{"table":"x"}', '[{"name":"x"}]']) {
      const error = await timeoutOf(behind);
      expect(error.behindTables).toEqual([]);
      expect(error.message).toContain('the daemon is behind, down, or listens on another channel or key prefix');
    }
  });

  it('keeps the mark and the list apart: a marked barrier resolves whatever the list says', async () => {
    const keyPrefix = uniqueRedisPrefix('barrier-timeout');
    await withRedis(async (redis) => {
      try {
        await redis.set(barrierBehindKey(keyPrefix, 'b2'), JSON.stringify([{ table: 'users' }]));
        await redis.set(barrierMarkKey(keyPrefix, 'b2'), '1');
        await waitForBarrier(redis, 'b2', { keyPrefix, timeoutMs: 1000 });
      } finally {
        await deleteKeysWithPrefix(redis, keyPrefix);
      }
    });
  });
});
