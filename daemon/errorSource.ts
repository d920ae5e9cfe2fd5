import pg from 'pg';
import { ConnectionFailedError, QueryFailedError } from '../lib/postgres/errors.ts';
import { LeaseLostError, RedisCommandError, RedisConnectionError, RedisTimeoutError, StorageFormatError } from '../lib/redis/redisErrors.ts';
import type { DaemonDependency } from './daemonEvents.ts';

/**
 * Which server an error came from, for the `source` label of
 * `tablecache_errors_total`: the library's typed errors say it, and so do
 * the drivers' own (node-postgres' `DatabaseError`, ioredis' `ReplyError`);
 * `null` when nothing says.
 */
export function errorSource(error: unknown): DaemonDependency | null {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof QueryFailedError || current instanceof ConnectionFailedError || current instanceof pg.DatabaseError) return 'postgres';
    if (
      current instanceof RedisConnectionError ||
      current instanceof RedisTimeoutError ||
      current instanceof RedisCommandError ||
      current instanceof StorageFormatError ||
      current instanceof LeaseLostError ||
      current.name === 'ReplyError'
    ) {
      return 'redis';
    }
  }
  return null;
}
