import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** The connection scripts and functions are sent on: the one place to widen (to a Cluster, say). */
export type ScriptConnection = Redis;

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
   */
  run(redis: ScriptConnection, keys: readonly string[], args: readonly RedisArgument[], readOnly = false): Promise<unknown> {
    // A plain promise chain, not an async function: reads are hot, every frame counts.
    return redis.callBuffer(readOnly ? 'EVALSHA_RO' : 'EVALSHA', this.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.callBuffer(readOnly ? 'EVAL_RO' : 'EVAL', this.source, keys.length, ...keys, ...args);
    });
  }
}
