import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** The connection scripts and functions are sent on: one Redis, or a Cluster (every key of a table shares a slot). */
export type ScriptConnection = Redis | Cluster;

/** An argument of a Redis command. */
export type RedisArgument = string | Buffer | number;

/**
 * A Lua script run by its SHA1 (EVALSHA, or EVALSHA_RO for read-only ones),
 * sending its source only when Redis does not know it yet (after a restart,
 * SCRIPT FLUSH, or on a replica that has never seen it).
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Runs the script with Buffer replies. Read-only scripts go through
   * EVALSHA_RO, so they run on replicas and for ACL users that may only read.
   * Command names are lower case: ioredis's Cluster sends a command to a
   * replica only when it finds the name, as written, read-only in its command table.
   */
  run(redis: ScriptConnection, keys: readonly string[], args: readonly RedisArgument[], readOnly = false): Promise<unknown> {
    // A plain promise chain, not an async function: reads are hot, every frame counts.
    return redis.callBuffer(readOnly ? 'evalsha_ro' : 'evalsha', this.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.callBuffer(readOnly ? 'eval_ro' : 'eval', this.source, keys.length, ...keys, ...args);
    });
  }
}
