/**
 * tablecache: the core model. A {@link CachedTable} serves records from fast
 * storage ({@link StorageTable}) or the database ({@link DbAccess}), tied
 * together by {@link Indexes}.
 *
 * @packageDocumentation
 */
export { CachedTable, type CachedTableOptions, type ChangeCounts, type InvalidateOptions, type SpecInput } from './cachedTable.ts';
export { Adjustment, IndexSpec, Indexes, type AnyIndexes } from './indexes.ts';
export { AllIndexes, AllIndexSpec, type AllIndexSpecOptions } from './allIndexes.ts';
export { PrimaryKeyIndexes, PrimaryKeySpec, PrimaryKeyAdjustment, type PrimaryKeySpecArgs, type AllPrimaryKeysOption } from './primaryKeyIndexes.ts';
export { PrimaryKeyRangeIndexes, PrimaryKeyRangeSpec, PrimaryKeyRangeAdjustment } from './primaryKeyRangeIndexes.ts';
export { primaryKeyScore } from './primaryKeyScore.ts';
export {
  KeyColumnIndexes,
  KeyColumnSpec,
  canonicalKey,
  canonicalKeyValue,
  keyColumnScore,
  NULL_KEY_SCORE,
  PRIMARY_KEY_INDEX,
  type KeyColumnIndexesOptions,
  type KeyColumnInput,
  type KeyColumnSpecArgs,
} from './keyColumnIndexes.ts';
export { Interval, nextScoreAfter, type Score } from './interval.ts';
export { StorageRecordsSpec, type RecheckPredicate } from './storageRecordsSpec.ts';
export { QueryArgsDbRecordsSpec, type DbAccess, type DbRecordsSpec, type RecordParser } from './dbAccess.ts';
export type { StorageTable, RecordScorer, PrimaryKey, Coverage, CoverageUpdate } from './storageTable.ts';
export { InvalidRecordRepository, type RefreshPair, type TakenBatch } from './invalidRecordRepository.ts';
export { silentLogger, type Logger } from './logger.ts';
export {
  TablecacheError,
  InvalidArgumentError,
  RecordNotFoundError,
  AlreadyLoadedError,
  NotLoadedError,
  NotCoveredError,
  UnsupportedIndexOperationError,
  type TablecacheErrorCode,
} from './errors.ts';
