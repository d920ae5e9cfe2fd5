import type { Redis } from 'ioredis';
import { openReader, type TableReader } from '../lib/client/tableReader.ts';
import { MetaField, TableKeys } from '../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';
import type { DaemonStorage, Row, StorageConnectOptions, TableWriter, TableWriterOptions } from './daemonStorage.ts';
import { checkEvictionPolicy } from './evictionPolicy.ts';
import { connectRedisWhenReachable } from './redisConnection.ts';

/** The daemon's default writer lease lifetime: a standby takes over at most about this long after the writer died. */
export const DEFAULT_LEASE_TTL_MS = 5_000;

/** Options of a {@link RedisDaemonStorage}. */
export interface RedisDaemonStorageOptions {
  /**
   * How long a writer lease lasts without renewal (renewed every third of
   * it; default {@link DEFAULT_LEASE_TTL_MS}). Shorter: a standby takes over
   * sooner after a crash; a Redis stall longer than this costs a reload.
   */
  readonly leaseTtlMs?: number;
  /** How long a record-count read for metrics may take (default 1,000 ms). */
  readonly readTimeoutMs?: number;
}

/**
 * The daemon's tables in Redis, shared with readers in other processes: one
 * connection for every table's writer ({@link RedisStorageTable}, each
 * holding its lease) and for barrier marks.
 */
export class RedisDaemonStorage implements DaemonStorage {
  readonly description: string;
  private redis: Redis | null = null;
  private events: StorageConnectOptions['events'] | null = null;

  constructor(
    private readonly config: TablecacheConfig['redis'],
    private readonly options: RedisDaemonStorageOptions = {},
  ) {
    this.description = `Redis at ${redactUrl(config.url)}`;
  }

  get barrierMarks(): Redis | undefined {
    return this.redis ?? undefined;
  }

  async connect({ logger, events, signal }: StorageConnectOptions): Promise<void> {
    const redis = await connectRedisWhenReachable(this.config, 'tablecache-daemon', {
      logger,
      ...(signal === undefined ? {} : { signal }),
      onRetry: (attempt, cause) => events.emit('waiting', { for: 'redis', detail: `${this.description} (${cause}; attempt ${attempt})` }),
    });
    try {
      await checkEvictionPolicy(redis, this.description, logger);
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    let down = false;
    redis.on('reconnecting', () => {
      if (down) return;
      down = true;
      logger.warn({ redis: redactUrl(this.config.url) }, 'lost the Redis connection; reconnecting');
      events.emit('connectionLost', { source: 'redis', attempt: 1 });
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      logger.info({ redis: redactUrl(this.config.url) }, 'the Redis connection is back');
      events.emit('connectionRestored', { source: 'redis' });
    });
    this.redis = redis;
    this.events = events;
  }

  async openWriter(options: TableWriterOptions): Promise<TableWriter> {
    const redis = this.connection();
    const keys = new TableKeys(options.table, this.config.keyPrefix);
    if (options.standby) {
      // Only for the readiness reason: the wait itself is RedisStorageTable's.
      const holder = await redis.get(keys.lease);
      if (holder !== null) this.events?.emit('waiting', { for: 'lease', detail: `the writer lease of table ${options.table}, held by ${holder} (standby)` });
    }
    // A renewal during open() may find the lease lost before the writer exists: remember it for the writer.
    let writer: RedisTableWriter | undefined;
    let lostWhileOpening = false;
    const storage = await RedisStorageTable.open<Row>({
      redis,
      table: options.table,
      scorer: options.scorer,
      keyPrefix: this.config.keyPrefix,
      leaseTtlMs: this.options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
      standby: options.standby,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      logger: options.logger,
      onLeaseLost: (error) => {
        if (writer === undefined) lostWhileOpening = true;
        else writer.lost = true;
        options.onLost(error);
      },
    });
    writer = new RedisTableWriter(redis, keys, storage, this.options.readTimeoutMs ?? 1_000);
    writer.lost = lostWhileOpening;
    return writer;
  }

  async close(): Promise<void> {
    const redis = this.redis;
    this.redis = null;
    await redis?.quit().catch(() => redis.disconnect());
  }

  private connection(): Redis {
    if (this.redis === null) throw new Error('RedisDaemonStorage: connect() first.');
    return this.redis;
  }
}

/** One table's writer in Redis: its {@link RedisStorageTable} and what it last published. */
class RedisTableWriter implements TableWriter {
  /** Set when the lease turned out to be lost; the writer then refuses to write. */
  lost = false;
  /** The generation the last load published, to notice Redis losing or replacing it. */
  private publishedGeneration: string | null = null;
  /** Records in the generation when it was published. */
  private publishedRecords = 0;
  private reader: TableReader<Row> | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly keys: TableKeys,
    private readonly storage: RedisStorageTable<Row>,
    private readonly readTimeoutMs: number,
  ) {}

  get writerId(): string {
    return this.storage.writerId;
  }

  /** The one writer: `clear()` at the start of a load starts a new generation beside the live one. */
  storageForLoad(): RedisStorageTable<Row> {
    return this.storage;
  }

  async published(): Promise<void> {
    this.publishedGeneration = await this.redis.hget(this.keys.meta, MetaField.generation);
    this.publishedRecords = this.publishedGeneration === null ? 0 : await this.redis.hlen(this.keys.records(Number(this.publishedGeneration)));
  }

  /**
   * Whether Redis still holds the generation this writer published, whole,
   * under its lease: `false` after FLUSHALL, a restart without persistence
   * (or with an older snapshot), another writer taking over, or an eviction
   * that took some of the generation's keys: the records hash and every
   * index must hold the same number of records, and not none when the last
   * load published some. Read in one pipeline, not a MULTI (which the
   * documented least-privilege ACL user may not run): the pipeline calls this
   * between its own writer steps, and this daemon is the table's only writer,
   * so nothing changes the counts meanwhile.
   *
   * A table that became empty through refreshes looks like a lost one: it
   * costs one reload of an empty table.
   */
  async intact(): Promise<boolean> {
    if (this.publishedGeneration === null) return true;
    const [generation, writer, overlay, indexes] = await this.redis.hmget(this.keys.meta, MetaField.generation, MetaField.writer, MetaField.overlay, MetaField.indexes);
    if (generation !== this.publishedGeneration || writer !== this.storage.writerId) return false;
    // A merge left half applied (the next one finishes it) has the counts in flux; the check after it looks again.
    if (overlay != null || indexes == null) return true;
    const id = Number(generation);
    const reads = this.redis.pipeline().hget(this.keys.meta, MetaField.generation).hlen(this.keys.records(id));
    for (const name of JSON.parse(indexes) as string[]) reads.zcard(this.keys.index(id, name));
    const replies = (await reads.exec()) ?? [];
    const failure = replies.find(([error]) => error !== null);
    if (failure) throw failure[0];
    const [sameGeneration, records, ...cardinalities] = replies.map(([, value]) => value);
    if (sameGeneration !== generation) return false;
    if (cardinalities.some((cardinality) => cardinality !== records)) return false;
    return !(this.publishedRecords > 0 && records === 0);
  }

  /** Whether the lease is still this writer's: Redis may have lost it (flush, restart) before a renewal noticed. */
  async writable(): Promise<boolean> {
    if (this.lost) return false;
    return (await this.redis.hget(this.keys.meta, MetaField.writer)) === this.storage.writerId;
  }

  /** What readers see, read the way readers read it (one atomic script call), failing fast when Redis does not answer. */
  async recordCount(): Promise<number | null> {
    this.reader ??= await openReader<Row>({ redis: this.redis, table: this.keys.table, keyPrefix: this.keys.keyPrefix, timeoutMs: this.readTimeoutMs });
    const info = await this.reader.info();
    return info.loaded ? info.recordCount : null;
  }

  async close(): Promise<void> {
    await this.reader?.close();
    await this.storage.close();
  }
}
