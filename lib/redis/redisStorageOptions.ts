import type { Cluster, Redis } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { RecordScorer } from '../core/storageTable.ts';
import { DEFAULT_KEY_PREFIX, TableKeys } from './keyLayout.ts';
import type { RecordCodec } from './recordCodec.ts';
import type { LeaseLostError } from './redisErrors.ts';

/** Options of {@link RedisStorageTable.open}. */
export interface RedisStorageTableOptions<R> {
  /**
   * A connection to use (left open by `close`): one Redis, or an ioredis
   * `Cluster` (every key of a table shares a slot). Give this or `url`.
   */
  readonly redis?: Redis | Cluster;
  /** A Redis URL to connect to (the connection is closed by `close`). */
  readonly url?: string;
  /** The table name; readers open the table by it. */
  readonly table: string;
  /** Primary keys and index scores of records. */
  readonly scorer: RecordScorer<R>;
  /** Start of every key name inside the hash tag (default `tablecache:`). */
  readonly keyPrefix?: string;
  /**
   * Place the table's keys under the hash tag `{<keyPrefix><hashTag>}`
   * instead of `{<keyPrefix><table>}`, to choose its Redis Cluster slot
   * (docs/redis-key-layout.md, "Placing a table"); readers must pass the same.
   */
  readonly hashTag?: string;
  /** Record encoding (default `MessagePackRecordCodec`); readers must use the same. */
  readonly codec?: RecordCodec<R>;
  /** Lease lifetime without renewal, in ms (default 10,000); a standby takes over at most this long after a crash. */
  readonly leaseTtlMs?: number;
  /** Wait until the current writer's lease expires instead of failing with `LeaseHeldError`. */
  readonly standby?: boolean;
  /** Aborts a standby wait. */
  readonly signal?: AbortSignal;
  /** Records per write script call (default 1,000); batches are also cut at about 1 MB. */
  readonly writeBatchSize?: number;
  /** Staged changes a merge applies per script call (default 2,000): bounds how long one call blocks Redis. */
  readonly mergeBatchSize?: number;
  /** Where lease changes and recoveries are logged. */
  readonly logger?: Logger;
  /** Called once when the lease is found lost; every later write throws {@link LeaseLostError}. */
  readonly onLeaseLost?: (error: LeaseLostError) => void;
}

const DEFAULTS = {
  leaseTtlMs: 10_000,
  writeBatchSize: 1_000,
  mergeBatchSize: 2_000,
} as const;

/**
 * The validated settings of {@link RedisStorageTableOptions}, defaults applied.
 *
 * @throws {@link InvalidArgumentError} for a batch size or lease lifetime that is not a positive integer, a scorer without indexes, or not exactly one of `redis` and `url`.
 */
export function writerSettings<R>(options: RedisStorageTableOptions<R>): { keys: TableKeys; writeBatchSize: number; mergeBatchSize: number; leaseTtlMs: number } {
  const keys = new TableKeys(options.table, options.keyPrefix ?? DEFAULT_KEY_PREFIX, options.hashTag);
  const settings = {
    keys,
    writeBatchSize: positiveInteger(options.writeBatchSize ?? DEFAULTS.writeBatchSize, 'writeBatchSize'),
    mergeBatchSize: positiveInteger(options.mergeBatchSize ?? DEFAULTS.mergeBatchSize, 'mergeBatchSize'),
    leaseTtlMs: positiveInteger(options.leaseTtlMs ?? DEFAULTS.leaseTtlMs, 'leaseTtlMs'),
  };
  if (options.scorer.indexNames.length === 0) throw new InvalidArgumentError('The scorer must name at least one index.');
  if ((options.redis === undefined) === (options.url === undefined)) {
    throw new InvalidArgumentError('Give RedisStorageTable.open exactly one of `redis` (a connection) or `url`.');
  }
  return settings;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}.`);
  return value;
}
