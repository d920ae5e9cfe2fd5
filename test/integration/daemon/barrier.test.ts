import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BarrierTimeoutError, barrierMarkKey, waitForBarrier } from '../../../lib/client/barrier.ts';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { classifyNotification } from '../../../daemon/notificationText.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';

let db: TestDatabase;
let redis: Redis;
const keyPrefix = uniqueRedisPrefix('barrier');

beforeAll(async () => {
  db = await createTestDatabase('barrier');
  redis = new Redis(testRedisUrl());
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, keyPrefix);
  redis.disconnect();
  await db.drop();
});

describe('read-your-writes barrier', () => {
  it('sends a barrier payload the daemon reads, on the given channel', async () => {
    const listener = await db.pool.connect();
    try {
      await listener.query('LISTEN tc_barrier_test');
      const received = new Promise<string>((resolve) => listener.once('notification', (message) => resolve(message.payload ?? '')));
      const id = await sendBarrier(db.pool, { channel: 'tc_barrier_test' });
      expect(classifyNotification(await received)).toEqual({ kind: 'barrier', payload: { v: 1, op: 'B', id } });
    } finally {
      await listener.query('UNLISTEN *');
      listener.release();
    }
  });

  it('refuses an id that would not make a plain key', async () => {
    await expect(sendBarrier(db.pool, { channel: 'c', id: 'a b' })).rejects.toThrow(InvalidArgumentError);
  });

  it('resolves once the mark is set, and times out with TC_TIMEOUT when it never is', async () => {
    const waiting = waitForBarrier(redis, 'marked-later', { keyPrefix, timeoutMs: 5_000 });
    await redis.set(barrierMarkKey(keyPrefix, 'marked-later'), '1', 'PX', 60_000);
    await expect(waiting).resolves.toBeUndefined();
    const error = await waitForBarrier(redis, 'never', { keyPrefix, timeoutMs: 50 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BarrierTimeoutError);
    expect(error).toMatchObject({ code: 'TC_TIMEOUT', barrierId: 'never' });
  });
});
