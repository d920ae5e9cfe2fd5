import { InvalidArgumentError, TablecacheError } from '../core/errors.ts';
import type { Interval } from '../core/interval.ts';
import type { RecordScorer } from '../core/storageTable.ts';
import { primaryKeyField, scoreArgument, type TableKeys } from './keyLayout.ts';
import type { RedisArgument, ScriptConnection } from './luaScript.ts';
import type { RecordCodec } from './recordCodec.ts';
import { RecordDecodeError, StorageFormatError } from './redisErrors.ts';
import { readPage, type RecordArguments } from './writerProtocol.ts';

const LIMITS = {
  readPageSize: 1_000,
  intervalsPerPage: 1_000,
  maxBatchBytes: 1 << 20,
  maxInFlightBatches: 4,
} as const;

/** A write batch is cut at about this many bytes of fields and records. */
export const MAX_BATCH_BYTES = LIMITS.maxBatchBytes;

/** A batch of encoded records for a write script, and whether the records ended with it. */
export interface EncodedBatch extends RecordArguments {
  readonly bytes: number;
  readonly last: boolean;
}

/** One decoded record as read from a page, with where it came from. */
export interface PageRecord<R> {
  /** Which of the requested intervals it lies in. */
  readonly interval: number;
  readonly field: string;
  readonly record: R;
}

/** Options of {@link RecordBatches}. */
export interface RecordBatchesOptions<R> {
  readonly redis: ScriptConnection;
  readonly keys: TableKeys;
  readonly scorer: RecordScorer<R>;
  readonly codec: RecordCodec<R>;
  /** Records per write batch. */
  readonly writeBatchSize: number;
}

/**
 * How a {@link RedisStorageTable} moves records: encoded into bounded write
 * batches with a few in flight, and read back in pages of many intervals,
 * decoded.
 */
export class RecordBatches<R> {
  constructor(private readonly options: RecordBatchesOptions<R>) {}

  /**
   * Pages through the records of one index whose score lies in any of
   * `intervals`, many intervals per script call. After the caller has used a
   * page, `remainingOf` says how many of the given entries (those of the
   * interval the page stopped in) are still in the index (all of them,
   * unless the caller deleted some), so that the next page starts right
   * after them.
   */
  async *pages(
    index: string,
    records: string,
    intervals: readonly Interval[],
    remainingOf: (entries: readonly PageRecord<R>[]) => number = (entries) => entries.length,
  ): AsyncGenerator<PageRecord<R>[]> {
    const bounds = intervals
      .filter((interval) => !interval.isEmpty)
      .map((interval) => [scoreArgument(interval.ge, () => 'An interval bound'), scoreArgument(interval.lt, () => 'An interval bound')] as const);
    let start = 0;
    let skip = 0;
    while (start < bounds.length) {
      const window = bounds.slice(start, start + LIMITS.intervalsPerPage);
      const { done, entries } = await readPage(this.options.redis, this.options.keys, { index, records, pageSize: LIMITS.readPageSize, skip, bounds: window });
      const page = entries.map(({ interval, field, bytes }): PageRecord<R> => ({ interval: start + interval, field, record: this.decode(records, field, bytes) }));
      yield page;
      if (done === window.length) {
        start += done;
        skip = 0;
        continue;
      }
      const partial = start + done;
      skip = (done === 0 ? skip : 0) + remainingOf(page.filter((entry) => entry.interval === partial));
      start = partial;
    }
  }

  decode(key: string, field: string, bytes: Buffer | null): R {
    if (bytes === null) {
      throw new StorageFormatError(`Index entry "${field}" has no record in hash "${key}": the table was changed outside tablecache. Reload the cache.`);
    }
    try {
      return this.options.codec.decode(bytes);
    } catch (error) {
      throw new RecordDecodeError(key, field, error);
    }
  }

  /**
   * Encodes records into script batches (field, bytes, one score per index)
   * and runs `send` for each, keeping a few in flight so the connection stays
   * busy while memory stays bounded.
   */
  async writeInBatches(records: AsyncIterable<R> | Iterable<R>, send: (batch: EncodedBatch) => Promise<unknown>): Promise<number> {
    const inFlight: Promise<unknown>[] = [];
    let failure: unknown;
    const track = (promise: Promise<unknown>) => {
      const tracked = promise.catch((error: unknown) => {
        failure ??= error;
      });
      inFlight.push(tracked);
    };
    let batch: RedisArgument[] = [];
    let batchRecords = 0;
    let batchBytes = 0;
    let total = 0;
    const flush = async (last: boolean) => {
      if (batchRecords === 0) return;
      track(send({ count: batchRecords, values: batch, bytes: batchBytes, last }));
      batch = [];
      batchRecords = 0;
      batchBytes = 0;
      if (inFlight.length >= LIMITS.maxInFlightBatches) await inFlight.shift();
    };
    for await (const record of records) {
      if (failure !== undefined) break;
      const field = this.fieldOf(record);
      const bytes = this.options.codec.encode(record);
      batch.push(field, bytes);
      for (const indexName of this.options.scorer.indexNames) {
        batch.push(scoreArgument(this.options.scorer.score(indexName, record), () => `Record "${field}" of table "${this.options.keys.table}" in index "${indexName}"`));
      }
      batchRecords++;
      batchBytes += bytes.length + field.length;
      total++;
      if (batchRecords >= this.options.writeBatchSize || batchBytes >= LIMITS.maxBatchBytes) await flush(false);
    }
    if (failure === undefined) await flush(true);
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    return total;
  }

  fieldOf(record: R): string {
    try {
      return primaryKeyField(this.options.scorer.primaryKey(record));
    } catch (error) {
      if (error instanceof TablecacheError) throw new InvalidArgumentError(`A record of table "${this.options.keys.table}" has no usable primary key: ${error.message}`);
      throw error;
    }
  }
}
