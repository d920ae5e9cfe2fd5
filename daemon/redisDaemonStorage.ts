import { Cluster } from 'ioredis';
import { openReader } from '../lib/client/openReader.ts';
import type { TableReader } from '../lib/client/tableReader.ts';
import { RedisStorageTable } from '../lib/redis/redisStorageTable.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import type { DaemonStorage, Row, StorageConnectOptions, TableWriter, TableWriterOptions } from './daemonStorage.ts';
import { watchClusterMasters } from './clusterMasterWatch.ts';
import { checkEvictionPolicy } from './evictionPolicy.ts';
import { connectRedisWhenReachable, describeRedis, type RedisConnection } from './redisConnection.ts';

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
  private redis: RedisConnection | null = null;
  /** With `waitReplicas`: the connection barrier marks (and their WAIT) go on. */
  private barrierConnection: RedisConnection | null = null;
  private events: StorageConnectOptions['events'] | null = null;
  private stopWatching: () => void = () => {};

  constructor(
    private readonly config: TablecacheConfig['redis'],
    private readonly options: RedisDaemonStorageOptions = {},
  ) {
    this.description = describeRedis(config);
  }

  get barrierMarks(): RedisConnection | undefined {
    if (this.redis === null) return undefined;
    if (!this.config.waitReplicas) return this.redis;
    // WAIT holds its connection until the replicas answer: not the one every table writes on.
    if (this.barrierConnection === null) {
      this.barrierConnection = this.redis.duplicate();
      // Failed writes surface through the tracker's pipeline; unhandled, the event would crash the process.
      this.barrierConnection.on('error', () => {});
    }
    return this.barrierConnection;
  }

  async connect({ logger, events, signal }: StorageConnectOptions): Promise<void> {
    const redis = await connectRedisWhenReachable(this.config, 'tablecache-daemon', {
      logger,
      ...(signal === undefined ? {} : { signal }),
      onRetry: (attempt, cause) => events.emit('waiting', { for: 'redis', detail: `${this.description} (${cause}; attempt ${attempt})` }),
    });
    try {
      // Each master of a cluster has its own maxmemory-policy, and any may hold a table.
      const servers = redis instanceof Cluster ? redis.nodes('master') : [redis];
      for (const server of servers) await checkEvictionPolicy(server, servers.length > 1 ? `${this.description} (node ${server.options.host}:${server.options.port})` : this.description, logger);
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    // Down while the connection reconnects, or (a cluster) while a master does not answer: both stall or fail writes.
    const causes = new Map<'connection' | 'master', string>();
    let failover: string | undefined;
    const lost = (cause: 'connection' | 'master', detail: string) => {
      const first = causes.size === 0;
      causes.set(cause, detail);
      if (first) events.emit('connectionLost', { source: 'redis', attempt: 1, detail });
    };
    const restored = (cause: 'connection' | 'master', after?: string) => {
      failover ??= after;
      if (!causes.delete(cause) || causes.size > 0) return;
      events.emit('connectionRestored', { source: 'redis', ...(failover === undefined ? {} : { failover }) });
      failover = undefined;
    };
    // Sentinel hands out whichever server is primary now: a new run_id after a reconnect is a failover.
    let runId = this.config.sentinel === undefined ? null : await serverRunId(redis);
    redis.on('reconnecting', () => {
      if (causes.has('connection')) return;
      logger.warn({ redis: this.description }, 'lost the Redis connection; reconnecting');
      lost('connection', `the connection to ${this.description} is down; reconnecting`);
    });
    redis.on('ready', () => {
      if (!causes.has('connection')) return;
      logger.info({ redis: this.description }, 'the Redis connection is back');
      if (runId === null) return restored('connection');
      void serverRunId(redis).then((now) => {
        const switched = now !== null && now !== runId;
        runId = now ?? runId;
        restored('connection', switched ? `${this.description} failed over to another server: it may lack the last writes` : undefined);
      });
    });
    if (redis instanceof Cluster) {
      this.stopWatching = watchClusterMasters(redis, {
        description: this.description,
        logger,
        onDown: (detail) => lost('master', detail),
        onUp: () => restored('master', `a master of ${this.description} was replaced or restarted: it may lack the last writes`),
      });
    }
    this.redis = redis;
    this.events = events;
  }

  async openWriter(options: TableWriterOptions): Promise<TableWriter> {
    const redis = this.connection();
    if (options.standby) {
      // Only for the readiness reason: the wait itself is RedisStorageTable's.
      const holder = await RedisStorageTable.leaseHolder(redis, options.table, this.config.keyPrefix, options.hashTag);
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
      ...(options.hashTag === undefined ? {} : { hashTag: options.hashTag }),
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
    writer = new RedisTableWriter(redis, { table: options.table, keyPrefix: this.config.keyPrefix, hashTag: options.hashTag }, storage, this.options.readTimeoutMs ?? 1_000);
    writer.lost = lostWhileOpening;
    return writer;
  }

  async close(): Promise<void> {
    const redis = this.redis;
    this.redis = null;
    this.barrierConnection?.disconnect();
    this.barrierConnection = null;
    this.stopWatching();
    await redis?.quit().catch(() => redis.disconnect());
  }

  private connection(): RedisConnection {
    if (this.redis === null) throw new Error('RedisDaemonStorage: connect() first.');
    return this.redis;
  }
}

/** The server's `run_id` (`INFO server`): another process after a reconnect means another server; `null` when INFO is not allowed. */
async function serverRunId(redis: RedisConnection): Promise<string | null> {
  try {
    return /^run_id:(\w+)/m.exec(await redis.info('server'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** One table's writer in Redis: its {@link RedisStorageTable}, which knows what it last published. */
class RedisTableWriter implements TableWriter {
  /** Set when the lease turned out to be lost; the writer then refuses to write. */
  lost = false;
  private closed = false;
  private reader: TableReader<Row> | null = null;

  constructor(
    private readonly redis: RedisConnection,
    private readonly table: { readonly table: string; readonly keyPrefix: string; readonly hashTag: string | undefined },
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
    await this.storage.notePublished();
  }

  /** See {@link RedisStorageTable.intact}: false once Redis lost or replaced what the last load published. */
  intact(): Promise<boolean> {
    return this.storage.intact();
  }

  /** Whether the lease is still this writer's: Redis may have lost it (flush, restart) before a renewal noticed. */
  async writable(): Promise<boolean> {
    // A closed writer's id may still be in the metadata (giving the lease up leaves it): it writes nothing any more.
    if (this.lost || this.closed) return false;
    return this.storage.writable();
  }

  /** What readers see, read the way readers read it (one atomic script call), failing fast when Redis does not answer. */
  async recordCount(): Promise<number | null> {
    this.reader ??= await openReader<Row>({
      redis: this.redis,
      table: this.table.table,
      keyPrefix: this.table.keyPrefix,
      ...(this.table.hashTag === undefined ? {} : { hashTag: this.table.hashTag }),
      timeoutMs: this.readTimeoutMs,
    });
    const info = await this.reader.info();
    return info.loaded ? info.recordCount : null;
  }

  savedPosition(): Promise<string | null> {
    return this.storage.savedCapturePosition();
  }

  async savePosition(position: string): Promise<void> {
    if (this.lost) return;
    await this.storage.saveCapturePosition(position);
  }

  async giveUp(): Promise<void> {
    this.lost = true;
    await this.storage.giveUpLease();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.reader?.close();
    await this.storage.close();
  }
}
