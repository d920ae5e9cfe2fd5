/**
 * tablecache/redis: the Redis storage, written by one writer per table and
 * read by any number of processes through `tablecache/client`.
 *
 * @packageDocumentation
 */
export { RedisStorageTable, type RedisStorageTableOptions } from './redisStorageTable.ts';
export { MessagePackRecordCodec, type RecordCodec, type ColumnCodec, type MessagePackRecordCodecOptions } from './recordCodec.ts';
export {
  TableKeys,
  LAYOUT_FORMAT_VERSION,
  DEFAULT_KEY_PREFIX,
  MetaField,
  primaryKeyField,
  scoreArgument,
  parseScore,
} from './keyLayout.ts';
export { encodeCoverage, decodeCoverage, coverageCovers } from './coverageFormat.ts';
export {
  LeaseHeldError,
  LeaseLostError,
  StorageFormatError,
  RecordDecodeError,
  RedisTimeoutError,
  RedisConnectionError,
  RedisCommandError,
  IncompleteGenerationError,
  ClosedError,
} from './redisErrors.ts';
