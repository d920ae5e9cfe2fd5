import { Cluster } from 'ioredis';
import { InvalidArgumentError, NotCoveredError } from '../core/errors.ts';
import { Interval, type Score } from '../core/interval.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { Coverage } from '../core/storageTable.ts';
import { coverageCovers, decodeCoverage } from '../redis/coverageFormat.ts';
import type { TableKeys } from '../redis/keyLayout.ts';
import type { RecordCodec } from '../redis/recordCodec.ts';
import { ClosedError, RecordDecodeError, StorageFormatError } from '../redis/redisErrors.ts';
import {
  type CoverageReply,
  type RangeParams,
  type ReaderReplyContext,
  type ReaderScriptName,
  coverageArgs,
  coverageReply,
  formatError,
  getArgs,
  getManyArgs,
  getReplyRecord,
  getReplyRecords,
  getReplyStep,
  infoArgs,
  infoReply,
  isReaderReplyError,
  rangeArgs,
  rangeReply,
  rangeReplyWithFields,
  readerReplyError,
  readerScriptKeys,
} from '../redis/scripts/readerScripts.ts';
import { registerNearCachedReader } from './barrier.ts';
import { ChangeSubscription } from './changeSubscription.ts';
import type { NearCache, NearCacheStats } from './nearCache.ts';
import type { ReaderConnection } from './readerConnection.ts';
import { readerKeyField, type ReaderKey } from './readerKey.ts';

/** Options of a range read. */
export interface RangeOptions {
  /**
   * Throw {@link NotCoveredError} unless the writer's published coverage
   * says the table holds every record of the range, checked in the same
   * atomic read (so "no record" then means "no such record").
   */
  readonly requireCovered?: boolean;
}

/** What the writer published about a table, read in one atomic step. */
export interface TableInfo {
  /** Whether a writer has published a complete generation. */
  readonly loaded: boolean;
  /** Records in the live generation. */
  readonly recordCount: number;
  /** The live generation's id (changes with every load or reload). */
  readonly generation: number | null;
  /** Counts every published writer step (load, refresh, adjustment). */
  readonly step: number;
  /** The codec id records are encoded with. */
  readonly codec: string | null;
  readonly indexNames: readonly string[];
  /** When the last step was published. */
  readonly lastRefreshAt: Date | null;
  /** When the live generation was published. */
  readonly loadedAt: Date | null;
  /** The writer holding the lease, if any. */
  readonly writer: { readonly id: string; readonly leaseExpiresInMs: number } | null;
  /** The near-cache's counters and staleness (this process), or null without one. */
  readonly nearCache: NearCacheStats | null;
}

/**
 * Reads one cached table from Redis. Get one from {@link openReader}.
 *
 * Read methods throw `NotLoadedError` (`TC_NOT_LOADED`) before the writer's first load,
 * {@link StorageFormatError} when the data is in a layout or codec this
 * reader does not know (reload the cache with a matching writer),
 * {@link RecordDecodeError} naming the key of a record that does not decode,
 * and `RedisTimeoutError` (`TC_TIMEOUT`) / `RedisConnectionError`
 * (`TC_CONNECTION_FAILED`) when Redis is slow or down.
 */
export class TableReader<R> implements AsyncDisposable {
  private coverageStep: string | null = null;
  private cachedCoverage: Coverage | null = null;
  private closed = false;
  private nearCache: NearCache<R> | null = null;
  private subscription: ChangeSubscription | null = null;
  private unregister: (() => void) | null = null;
  /** Per-read values built once: reads are hot. */
  private readonly metaKeys: readonly string[];
  private readonly readingByKey: string;
  private readonly replyContext: ReaderReplyContext;

  /** @internal Use {@link openReader}. */
  constructor(
    private readonly connection: ReaderConnection,
    private readonly keys: TableKeys,
    private readonly codec: RecordCodec<R>,
  ) {
    this.metaKeys = readerScriptKeys(keys, 'get');
    this.replyContext = { keys, codecId: codec.id };
    this.readingByKey = `reading a record by primary key of table "${keys.table}"`;
  }

  /** The table's name. */
  get table(): string {
    return this.keys.table;
  }

  /** @internal What `waitForBarrier(reader, id)` waits on: the connection this reader reads from. */
  get barrierView(): {
    readonly keyPrefix: string;
    readonly hashTag: string | undefined;
    readonly redis: ReaderConnection['redis'];
    primaryHasKey(key: string): Promise<boolean | null>;
  } {
    const connection = this.connection;
    return { keyPrefix: this.keys.keyPrefix, hashTag: this.keys.hashTag, redis: connection.redis, primaryHasKey: (key) => connection.primaryHasKey(key) };
  }

  /**
   * The record with primary key `key`, or `undefined` when the table has none.
   * See {@link ReaderKey} for the forms a key may take.
   *
   * @throws {@link InvalidArgumentError} for a key no record can have (NULL, NaN, a Date, an object).
   */
  get(key: ReaderKey): Promise<R | undefined> {
    let field: string;
    try {
      field = readerKeyField(key);
    } catch (error) {
      return Promise.reject(error);
    }
    const cache = this.nearCache;
    if (cache !== null && !this.closed) {
      const entry = cache.answerOne(field);
      if (entry !== undefined) return Promise.resolve(entry.record);
    }
    const epoch = cache?.epoch ?? 0;
    return this.call('get', getArgs(this.codec.id, field), this.readingByKey, (reply) => {
      const bytes = getReplyRecord(reply, 0);
      let record: R | undefined;
      try {
        record = bytes === null ? undefined : this.codec.decode(bytes);
      } catch (error) {
        return this.liveRecordsKey().then((key) => Promise.reject(new RecordDecodeError(key, field, error)));
      }
      if (cache !== null) {
        const records = [record];
        cache.fill(epoch, getReplyStep(reply), [field], records, [bytes?.length ?? 0]);
        return records[0];
      }
      return record;
    });
  }

  /** The records with the given primary keys ({@link ReaderKey}), in the same order; `undefined` where there is none. */
  async getMany(keys: readonly ReaderKey[]): Promise<(R | undefined)[]> {
    if (keys.length === 0) return [];
    if (keys.length === 1) return [await this.get(keys[0]!)];
    const fields = keys.map((key) => readerKeyField(key));
    const cache = this.nearCache;
    if (cache !== null && !this.closed) {
      const cached = cache.answerAll(fields);
      if (cached !== null) return cached;
    }
    const epoch = cache?.epoch ?? 0;
    const reply = await this.call('get', getManyArgs(this.codec.id, fields), `reading records by primary key of table "${this.table}"`);
    const values = getReplyRecords(reply);
    const records = await this.decodeFields(fields, values);
    if (cache !== null) {
      cache.fill(epoch, getReplyStep(reply), fields, records, values.map((bytes) => bytes?.length ?? 0));
    }
    return records;
  }

  /**
   * The near-cache's counters, occupancy and staleness (the time from a
   * writer step's publication in Redis to this process dropping its keys),
   * or null when the reader has no near-cache.
   */
  nearCacheStats(): NearCacheStats | null {
    return this.nearCache?.stats() ?? null;
  }

  /** @internal Subscribes the near-cache to the table's change stream (openReader does this). */
  async attachNearCache(cache: NearCache<R>): Promise<void> {
    const redis = this.connection.redis;
    if (redis instanceof Cluster) {
      // A cluster's subscriber may move between nodes without telling: the stream could miss a step unnoticed.
      throw new InvalidArgumentError('A near-cache needs a reader on one node (`url`, `sentinel`, or a Redis connection): it is not available on a Redis Cluster yet.');
    }
    const subscriber = redis.duplicate({ lazyConnect: true, autoResubscribe: false, enableReadyCheck: false, enableOfflineQueue: true });
    this.nearCache = cache;
    this.subscription = new ChangeSubscription(subscriber, this.keys.changes, cache as NearCache<unknown>, async () => (await this.info()).step);
    this.unregister = registerNearCachedReader({ keyPrefix: this.keys.keyPrefix, table: this.keys.table, raiseFloor: () => this.raiseNearCacheFloor() });
    await this.subscription.start(this.connection.timeoutMs);
  }

  /**
   * Read-your-writes after a barrier: the near-cache answers nothing until
   * its stream has reached the table's step now. When the step cannot be
   * read (Redis unreachable), the near-cache is emptied and set up again
   * instead, which is as safe, so the barrier wait does not fail for it.
   */
  private async raiseNearCacheFloor(): Promise<void> {
    try {
      const step = (await this.info()).step;
      this.nearCache?.raiseFloor(step);
    } catch {
      this.subscription?.resync();
    }
  }

  /** The records whose score in `indexName` lies in `[ge, lt)`, in ascending score order. */
  async range(indexName: string, ge: Score, lt: Score, options: RangeOptions = {}): Promise<R[]> {
    return this.readIntervals(indexName, [new Interval(ge, lt)], options);
  }

  /**
   * The records a {@link StorageRecordsSpec} selects (all its intervals in
   * one atomic read), filtered by its recheck predicate.
   */
  async records(spec: StorageRecordsSpec<R>, options: RangeOptions = {}): Promise<R[]> {
    const records = await this.readIntervals(spec.indexName, spec.scoreIntervals, options);
    return spec.recheckPredicate ? records.filter((record) => spec.accepts(record)) : records;
  }

  /** Whether the writer's published coverage holds every record with a score in `[ge, lt)` of `indexName`. */
  async covers(indexName: string, ge: Score, lt: Score): Promise<boolean> {
    return coverageCovers(await this.coverage(), indexName, [new Interval(ge, lt)]);
  }

  /**
   * The coverage the writer published (which scores of each index the table
   * holds completely), or `null` when its Indexes cannot describe it.
   */
  async coverage(): Promise<Coverage | null> {
    this.updateCoverage(coverageReply(await this.call('coverage', coverageArgs(this.coverageStep), `reading the coverage of table "${this.table}"`)));
    return this.cachedCoverage;
  }

  /** What the writer published about the table; does not throw before the first load. */
  async info(): Promise<TableInfo> {
    const reply = infoReply(await this.call('info', infoArgs(), `reading the info of table "${this.table}"`, undefined, readerScriptKeys(this.keys, 'info')));
    if (reply.status === 'format') throw formatError(this.table, reply.format ?? '');
    return {
      loaded: reply.status === 'ok',
      recordCount: reply.recordCount,
      generation: reply.generation,
      step: reply.step,
      codec: reply.codec,
      indexNames: reply.indexNames,
      lastRefreshAt: reply.refreshedAt === null ? null : new Date(reply.refreshedAt),
      loadedAt: reply.loadedAt === null ? null : new Date(reply.loadedAt),
      writer: reply.writerId === null ? null : { id: reply.writerId, leaseExpiresInMs: reply.leaseExpiresInMs },
      nearCache: this.nearCache?.stats() ?? null,
    };
  }

  /** Closes the connection if the reader opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unregister?.();
    await this.subscription?.close();
    await this.connection.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readIntervals(indexName: string, intervals: readonly Interval[], options: RangeOptions): Promise<R[]> {
    const params: RangeParams = options.requireCovered
      ? { codecId: this.codec.id, indexName, coverageStep: this.coverageStep, intervals }
      : { codecId: this.codec.id, indexName, intervals };
    let args: string[];
    try {
      args = rangeArgs(params);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.call('range', args, `reading a range of index "${indexName}" of table "${this.table}"`, (reply) => {
      const { coverage, records: values } = rangeReply(reply, options.requireCovered === true);
      if (coverage !== null) {
        this.updateCoverage(coverage);
        if (!coverageCovers(this.cachedCoverage, indexName, intervals)) {
          throw new NotCoveredError(
            `Table "${this.table}" does not hold every record of index "${indexName}" in ${intervals.join(', ')} (per the writer's published coverage); read those from the database.`,
          );
        }
      }
      const records: R[] = new Array(values.length);
      try {
        for (let i = 0; i < values.length; i++) records[i] = this.codec.decode(values[i]!);
      } catch (error) {
        return this.locateDecodeFailure(indexName, intervals, error).then((failure) => Promise.reject(failure));
      }
      return records;
    });
  }

  /**
   * The error for a range whose records did not all decode: reads the range
   * again with field names (a rare path, so the common reply stays lean) to
   * name the record's key and field.
   */
  private async locateDecodeFailure(indexName: string, intervals: readonly Interval[], cause: unknown): Promise<Error> {
    const args = rangeArgs({ codecId: this.codec.id, indexName, withFields: true, intervals });
    const reply = await this.call('range', args, `locating a record that does not decode in table "${this.table}"`);
    const recordsKey = await this.liveRecordsKey();
    for (const { field, bytes } of rangeReplyWithFields(reply)) {
      if (bytes === null) {
        return new StorageFormatError(`Index entry "${field}" of table "${this.table}" has no record in "${recordsKey}"; the table was changed outside tablecache. Reload the cache.`);
      }
      try {
        this.codec.decode(bytes);
      } catch (error) {
        return new RecordDecodeError(recordsKey, field, error);
      }
    }
    return cause instanceof Error ? cause : new Error(String(cause));
  }

  private async decodeFields(fields: readonly string[], values: readonly (Buffer | null)[]): Promise<(R | undefined)[]> {
    const records: (R | undefined)[] = [];
    for (let i = 0; i < fields.length; i++) {
      const bytes = values[i] ?? null;
      if (bytes === null) {
        records.push(undefined);
        continue;
      }
      try {
        records.push(this.codec.decode(bytes));
      } catch (error) {
        throw new RecordDecodeError(await this.liveRecordsKey(), fields[i]!, error);
      }
    }
    return records;
  }

  private async liveRecordsKey(): Promise<string> {
    const { generation } = await this.info();
    return generation === null ? this.keys.meta : this.keys.records(generation);
  }

  private updateCoverage({ step, json }: CoverageReply): void {
    if (json !== null) {
      this.cachedCoverage = decodeCoverage(json.toString());
      this.coverageStep = step;
    } else if (this.coverageStep !== step) {
      // The writer published no coverage for this step.
      this.cachedCoverage = null;
      this.coverageStep = step;
    }
  }

  /**
   * One read; `onReply` runs in the same promise step as the error mapping,
   * so a read costs one handler after the reply (reads are hot).
   */
  private call<T = unknown>(
    script: ReaderScriptName,
    args: readonly string[],
    doing: string,
    onReply?: (reply: unknown) => T | Promise<T>,
    keys: readonly string[] = this.metaKeys,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new ClosedError(`The reader of table "${this.table}" is closed.`));
    return this.connection.read(script, keys, args, doing).then(onReply as (reply: unknown) => T, (error: unknown) => {
      throw isReaderReplyError(error) ? readerReplyError(error, this.replyContext) : error;
    });
  }
}
