import type { Redis } from 'ioredis';
import { TablecacheError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/logger.ts';

/**
 * Redis evicts keys under this policy that a cached table needs: `allkeys-*`
 * may evict any key, and a table's records and indexes carry no TTL, so only
 * those policies can evict them (`volatile-*` evicts keys with a TTL: the
 * lease and barrier marks, which the daemon takes back or re-sets).
 */
export function evictsTableKeys(policy: string): boolean {
  return policy.startsWith('allkeys-');
}

/**
 * The server's `maxmemory-policy`: from `INFO memory` (`maxmemory_policy`),
 * which the daemon's ACL user may run anyway (the client's ready check needs
 * it), so a least-privilege user causes no refusal in the ACL log; else from
 * `CONFIG GET`; `null` when neither is allowed.
 */
export async function readEvictionPolicy(redis: Pick<Redis, 'config' | 'info'>): Promise<string | null> {
  try {
    const policy = /^maxmemory_policy:(\S+)/m.exec(await redis.info('memory'))?.[1];
    if (policy !== undefined) return policy;
  } catch {
    // NOPERM (ACL), or a managed Redis that restricts INFO: CONFIG may still say.
  }
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    return reply[1] ?? null;
  } catch {
    return null;
  }
}

/** The daemon refuses to run on a Redis whose eviction policy can remove a cached table's keys (code `TC_CONFIG_INVALID`). */
export class EvictingRedisError extends TablecacheError {
  constructor(
    readonly where: string,
    readonly policy: string,
  ) {
    super(
      'TC_CONFIG_INVALID',
      `${where} runs with maxmemory-policy ${policy}, which evicts any key when memory is full: a cached table would silently ` +
        'lose records (readers would find nothing) and be reloaded again and again. Give the cache a Redis that does not evict ' +
        '(`CONFIG SET maxmemory-policy noeviction`, or a volatile-* policy, which evicts only keys with a TTL) and enough memory for the tables.',
    );
  }
}

/**
 * Reads the eviction policy and acts on it: throws {@link EvictingRedisError}
 * under `allkeys-*`; logs a warning under `volatile-*` (only the lease and
 * barrier marks can go, which is survivable but means memory is tight) and
 * when the policy cannot be read (the periodic intactness check still
 * notices lost data).
 */
export async function checkEvictionPolicy(redis: Pick<Redis, 'config' | 'info'>, where: string, logger: Logger): Promise<string | null> {
  const policy = await readEvictionPolicy(redis);
  if (policy === null) {
    logger.warn({ redis: where }, 'could not read maxmemory-policy (CONFIG and INFO refused); make sure it is noeviction: an evicting Redis loses cached records');
  } else if (evictsTableKeys(policy)) {
    throw new EvictingRedisError(where, policy);
  } else if (policy.startsWith('volatile-')) {
    logger.warn({ redis: where, policy }, 'Redis may evict keys with a TTL (writer leases, barrier marks) when memory is full; noeviction is safer');
  }
  return policy;
}
