/**
 * tablecache/client: the thin reader of tables a `RedisStorageTable` writes.
 * Talks to Redis only; imports neither pg nor the writer.
 *
 * @packageDocumentation
 */
export { openReader, type ReaderOptions } from './openReader.ts';
export { TableReader, type RangeOptions, type TableInfo } from './tableReader.ts';
export type { ReaderKey } from './readerKey.ts';
export type { ReaderConnectionOptions } from './readerConnection.ts';
export type { ReadFrom, ReaderClusterOptions, ReaderSentinelOptions } from './readerTopology.ts';
export type { ClusterNatMap, ReachableAddress } from '../redis/clusterNatMap.ts';
export type { NearCacheOptions, NearCacheStats, InvalidationEvent } from './nearCache.ts';
export { coverageCovers } from '../redis/coverageFormat.ts';
export { MessagePackRecordCodec, type RecordCodec, type ColumnCodec } from '../redis/recordCodec.ts';
export { RecordDecodeError, StorageFormatError, RedisTimeoutError, RedisConnectionError, ClosedError } from '../redis/redisErrors.ts';
export { waitForBarrier, barrierMarkKey, tableBarrierMarkKey, barrierBehindKey, BarrierTimeoutError, BARRIER_MARK_TTL_MS, type BarrierBehindTable, type BarrierWaitTarget, type WaitForBarrierOptions } from './barrier.ts';
