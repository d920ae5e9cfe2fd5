import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { checkEvictionPolicy, EvictingRedisError, evictsTableKeys, readEvictionPolicy } from '../../../daemon/evictionPolicy.ts';

/** Stands in for the two Redis commands the policy is read with: each answers or is refused (as an ACL would). */
function redisAnswering(config: string | Error, info: string | Error) {
  return {
    config: async () => {
      if (config instanceof Error) throw config;
      return ['maxmemory-policy', config];
    },
    info: async () => {
      if (info instanceof Error) throw info;
      return info;
    },
  } as never;
}

const noperm = new Error("NOPERM this user has no permissions to run the 'config|get' command");

describe('the eviction policy check', () => {
  it('knows that only allkeys-* policies evict keys without a TTL', () => {
    expect(['allkeys-lru', 'allkeys-lfu', 'allkeys-random'].map(evictsTableKeys)).toEqual([true, true, true]);
    expect(['noeviction', 'volatile-lru', 'volatile-ttl'].map(evictsTableKeys)).toEqual([false, false, false]);
  });

  it('reads the policy from INFO memory, from CONFIG GET when INFO is refused, and gives up when both are', async () => {
    expect(await readEvictionPolicy(redisAnswering('volatile-lru', noperm))).toBe('volatile-lru');
    expect(await readEvictionPolicy(redisAnswering(noperm, '# Memory\r\nused_memory:1\r\nmaxmemory_policy:allkeys-lru\r\n'))).toBe('allkeys-lru');
    expect(await readEvictionPolicy(redisAnswering(noperm, noperm))).toBeNull();
  });

  it('refuses an evicting Redis with an error naming the policy and the fix, and lets the others run', async () => {
    const logger = pino({ level: 'silent' });
    const error = await checkEvictionPolicy(redisAnswering('allkeys-lru', noperm), 'Redis at redis://cache:6379', logger).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EvictingRedisError);
    expect(error).toMatchObject({ code: 'TC_CONFIG_INVALID', policy: 'allkeys-lru' });
    expect((error as Error).message).toContain('CONFIG SET maxmemory-policy noeviction');
    await expect(checkEvictionPolicy(redisAnswering('noeviction', noperm), 'Redis', logger)).resolves.toBe('noeviction');
    await expect(checkEvictionPolicy(redisAnswering('volatile-lru', noperm), 'Redis', logger)).resolves.toBe('volatile-lru');
    await expect(checkEvictionPolicy(redisAnswering(noperm, noperm), 'Redis', logger)).resolves.toBeNull();
  });
});
