import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, inject } from 'vitest';

/**
 * The Redis URL for the tests. Throws the one-line explanation of how to
 * provide Redis when the run found none, so every Redis test fails with it.
 */
export function testRedisUrl(): string {
  const url = inject('redisUrl');
  if (url === null) throw new Error(inject('redisUnavailableReason') ?? 'No Redis for the tests.');
  return url;
}

/** A key prefix no other test file uses, so files can share one Redis. */
export function uniqueRedisPrefix(label = 'test'): string {
  return `tctest:${label}:${randomBytes(4).toString('hex')}:`;
}

/** Runs `fn` with a Redis connection, closed afterwards. */
export async function withRedis<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/**
 * Deletes every key under `prefix`, including table keys, which start with
 * the hash tag `{<prefix>…}` (SCAN, never KEYS).
 */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<void> {
  for (const pattern of [`${prefix}*`, `{${prefix}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  }
}

/** A test file's Redis, from {@link fileRedis}. */
export interface FileRedis {
  /** One connection for the whole file. */
  readonly redis: Redis;
  /** A key prefix no other file uses; its keys are deleted after the file's last test. */
  readonly prefix: string;
  /** What a test pushes here is closed after that test, the last opened first. */
  readonly opened: { close(): Promise<void> }[];
}

/**
 * Sets up a test file's Redis (call it at the top of the file): connected
 * before the first test, closed after the last one, its prefix's keys
 * deleted; the writers and readers a test opens are closed after it.
 */
export function fileRedis(label: string): FileRedis {
  const file: FileRedis = { redis: new Redis(testRedisUrl(), { lazyConnect: true }), prefix: uniqueRedisPrefix(label), opened: [] };
  beforeAll(async () => {
    await file.redis.connect();
  });
  afterEach(async () => {
    for (const thing of file.opened.splice(0).reverse()) await thing.close();
  });
  afterAll(async () => {
    await deleteKeysWithPrefix(file.redis, file.prefix);
    await file.redis.quit();
  });
  return file;
}
