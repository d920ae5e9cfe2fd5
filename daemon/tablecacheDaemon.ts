import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { InvalidArgumentError, TablecacheError } from '../lib/core/errors.ts';
import { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { CaptureCheck } from './captureCheck.ts';
import { ChangeMapper, type MappedTable } from './changeMapper.ts';
import { ChangePipeline } from './changePipeline.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';
import { tableIndexes } from './config/tableIndexes.ts';
import type { DaemonPhase, DaemonReadiness } from './daemonReadiness.ts';
import type { DaemonEvents } from './daemonEvents.ts';
import type { DaemonStorage } from './daemonStorage.ts';
import type { CaptureSlotMetrics } from './http/daemonMetrics.ts';
import { LogicalChangeSource } from './logical/logicalChangeSource.ts';
import { NotifyChangeSource } from './notifyChangeSource.ts';
import { logicalCaptureSpecFromConfig } from './config/logicalCaptureSpecFromConfig.ts';
import { ReadinessTracker } from './readinessTracker.ts';
import { RedisDaemonStorage } from './redisDaemonStorage.ts';
import { checkDatabaseAtStart } from './startupDatabaseCheck.ts';
import { openTableWriters } from './startupTableWriters.ts';
import { PostgresStepSnapshots } from './stepSnapshot.ts';
import { cachedSenderTrust } from './senderCheck.ts';
import type { TableSync } from './tableSync.ts';

/** Options of a {@link TablecacheDaemon}. */
export interface DaemonOptions {
  /** Where the daemon logs, with `table` fields; default: nothing. */
  readonly logger?: Logger;
  /**
   * Wait for another daemon's writer leases to expire instead of failing at
   * start: a standby that takes over when the active daemon dies.
   */
  readonly standby?: boolean;
  /** Aborts a start that waits (for Postgres, Redis, or as a standby). */
  readonly signal?: AbortSignal;
  /**
   * Where the tables live: by default Redis as configured
   * ({@link RedisDaemonStorage}); a {@link LocalDaemonStorage} keeps them in
   * this process instead (the configured Redis is then not contacted).
   */
  readonly storage?: DaemonStorage;
  /**
   * Writer lease lifetime in Redis, in ms (default: the config's
   * `daemon.leaseTtlMs`; renewed every third of it): a standby takes over at
   * most about this long after the writer died. Used by the default storage only.
   */
  readonly leaseTtlMs?: number;
  /** How often each table is checked for lost Redis data (default 1,000 ms). */
  readonly storageCheckIntervalMs?: number;
  /** How often an idle LISTEN connection is checked (default 10,000 ms). */
  readonly listenerCheckMs?: number;
  /** How often `pg_notification_queue_usage()` is read (default 5,000 ms). */
  readonly queueCheckIntervalMs?: number;
  /** How often the source tables' triggers and shapes are checked (default: the config's `daemon.captureCheckIntervalMs`). */
  readonly captureCheckIntervalMs?: number;
  /** How often each table's lag is sampled for readiness (default 250 ms). */
  readonly lagSampleIntervalMs?: number;
}

/** The most Postgres sessions the daemon's pool opens, whatever the number of tables. */
const POOL_MAX = 40;

/**
 * The daemon: keeps every configured table in Redis (or, with a
 * {@link LocalDaemonStorage}, in this process) equal to its query in
 * Postgres, for as long as it runs.
 *
 * Start: connect to Redis (waiting, with backoff, while it is down), check
 * the configuration against Postgres (waiting likewise; a refused login or a
 * configuration the database does not match ends the start), take every
 * table's writer lease (as a standby: waiting for it), LISTEN
 * (waiting for Postgres likewise), then load every table (notifications that
 * arrive during the load are applied after it, so nothing committed
 * meanwhile is missed). Then, per batch of notifications: refresh exactly the
 * affected records, or reload a table built beside the live data and
 * switched in atomically (TRUNCATE, coarse change, unknown payload version).
 * A lost LISTEN connection reconnects with capped backoff and resyncs (every
 * table is reloaded, since notifications sent meanwhile are gone); Redis
 * losing the data (flush, restart, lost lease) is noticed within a second
 * and reloaded; a notification queue so full that the triggers fell silent
 * is noticed by reading `pg_notification_queue_usage()`, and reloaded.
 *
 * Everything it does is an event ({@link DaemonEvents}), and
 * {@link readiness} says whether it serves current data: the health
 * endpoint and the metrics observe it that way.
 *
 * @example
 * ```ts
 * const daemon = new TablecacheDaemon(await loadConfig('tablecache.yaml'), { logger: pino() });
 * daemon.on('batchApplied', (event) => metrics.observe(event.ms));
 * process.once('SIGTERM', () => void daemon.close());
 * await daemon.start();
 * ```
 */
export class TablecacheDaemon extends EventEmitter<DaemonEvents> implements AsyncDisposable {
  /** Where the tables live. */
  readonly storage: DaemonStorage;
  private readonly logger: Logger;
  private phase: DaemonPhase = 'created';
  private starting: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  /** Aborts waits in `start` and the running load when the daemon is closed. */
  private readonly stopper = new AbortController();
  private db: PostgresAccess | null = null;
  private tables: TableSync[] = [];
  private pipeline: ChangePipeline | null = null;
  /** Where changes come from: LISTEN (triggers) or the replication slot (logical). */
  private source: NotifyChangeSource | LogicalChangeSource | null = null;
  private captureCheck: CaptureCheck | null = null;
  private snapshots: PostgresStepSnapshots | null = null;
  private readonly readinessTracker: ReadinessTracker;
  private lagSampler: NodeJS.Timeout | null = null;

  /**
   * A daemon for `config`, not started: attach listeners (metrics, health),
   * then call {@link start}.
   */
  constructor(
    private readonly config: TablecacheConfig,
    private readonly options: DaemonOptions = {},
  ) {
    super();
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.storage = options.storage ?? new RedisDaemonStorage(config.redis, { leaseTtlMs: options.leaseTtlMs ?? config.daemon.leaseTtlMs });
    this.readinessTracker = new ReadinessTracker({ events: this, tableNames: this.tableNames, maxLagMs: config.daemon.maxLagMs, storageDescription: this.storage.description });
    this.on('connectionRestored', ({ failover }) => {
      // Asynchronous replication: the promoted replica may lack the last refreshes, which no count would reveal.
      if (failover !== undefined) this.pipeline?.requestReload(null, failover, 'redis_failover');
    });
  }

  /**
   * Creates a daemon and starts it.
   *
   * @throws see {@link TablecacheDaemon.prototype.start}.
   */
  static async start(config: TablecacheConfig, options: DaemonOptions = {}): Promise<TablecacheDaemon> {
    const daemon = new TablecacheDaemon(config, options);
    await daemon.start();
    return daemon;
  }

  /**
   * Connects (waiting for Redis and Postgres as long as they are down or
   * starting up), checks the configuration against the database, takes
   * every table's writer lease, LISTENs, and starts loading. Resolves once
   * LISTEN is active; the loads go on in the background (see
   * {@link readiness} and the `loaded` events).
   *
   * @throws {@link ConfigError} for a table whose Indexes cannot be built, or a configuration naming tables or
   * columns the database does not have.
   * @throws `ConfigQueryError` (`TC_QUERY_FAILED`) when Postgres refuses a configured query.
   * @throws `TC_CONNECTION_FAILED` when Postgres or Redis refuses the login (wrong password or user, unknown database).
   * @throws `LeaseHeldError` (`TC_LEASE_HELD`) when another daemon writes a table and `standby` is off.
   * @throws the signal's reason when `signal` aborts, or `TC_CLOSED` when {@link close} is called, during the start.
   * @throws {@link InvalidArgumentError} when called twice.
   */
  async start(): Promise<void> {
    if (this.phase !== 'created') throw new InvalidArgumentError(`This daemon was already started (it is ${this.phase}); create a new one.`);
    this.phase = 'starting';
    this.starting = this.connect();
    try {
      await this.starting;
    } catch (error) {
      await this.release();
      this.phase = 'stopped';
      throw error;
    }
    // close() was called as the start finished: it releases everything.
    if (this.closing !== null) return;
    this.phase = 'running';
    this.emit('started');
  }

  private async connect(): Promise<void> {
    const { config, options, logger } = this;
    const signal = options.signal === undefined ? this.stopper.signal : AbortSignal.any([options.signal, this.stopper.signal]);
    const mapped: MappedTable[] = [];
    for (const table of config.tables) mapped.push({ name: table.name, indexes: await tableIndexes(table), sources: table.sources });
    // Tables step at the same time, each holding a snapshot session while it sends its tick on another: room for
    // every table's two and for the checks beside them, up to a bound that leaves Postgres' max_connections alone.
    const poolSize = Math.min(POOL_MAX, 10 + 2 * mapped.length);
    const db = new PostgresAccess({ connectionString: config.postgres.url, application_name: 'tablecache-daemon', logger, max: poolSize });
    this.db = db;
    logger.info({ storage: this.storage.description, tables: mapped.map((table) => table.name) }, 'starting');
    await this.storage.connect({ logger, events: this, signal });
    // A wrong login or a configuration the database does not match ends the start here, with its exit code, instead of a retry loop.
    await checkDatabaseAtStart(config, {
      logger,
      signal,
      onRetry: (attempt, cause) => this.emit('waiting', { for: 'postgres', detail: `Postgres at ${redactUrl(config.postgres.url)} (${cause}; attempt ${attempt})` }),
    });
    await openTableWriters({
      tables: mapped.map((table) => ({ ...table, hashTag: config.tables.find((candidate) => candidate.name === table.name)?.hashTag })),
      db,
      stopSignal: this.stopper.signal,
      storage: this.storage,
      logger,
      events: this,
      standby: options.standby ?? false,
      signal,
      requestReload: (name, reason, kind) => this.pipeline?.requestReload([name], reason, kind),
      opened: (table) => this.tables.push(table),
    });
    const mapper = new ChangeMapper(mapped);
    const capture = config.capture;
    let logical: LogicalChangeSource | null = null;
    const snapshots = new PostgresStepSnapshots({
      pool: db.pool,
      channel: config.triggers.channel,
      statementTimeoutMs: config.daemon.refreshTimeoutMs,
      // The rest of the pool is for ticks, resolve-free checks and row estimates: never all taken by open snapshots.
      maxOpen: Math.max(1, Math.floor((poolSize - 4) / 2)),
      ...(capture.method === 'logical'
        ? { tick: 'logicalMessage', onTickXid: (xid: bigint) => logical?.observeXid(xid) }
        : { trustsSender: cachedSenderTrust(db.pool) }),
    });
    this.snapshots = snapshots;
    let resumed = new Set<string>();
    if (capture.method === 'logical') {
      const spec = logicalCaptureSpecFromConfig(config);
      logical = new LogicalChangeSource({
        connectionString: config.postgres.listenUrl,
        pool: db.pool,
        slot: spec.slot,
        publication: spec.publication,
        channel: config.triggers.channel,
        sources: spec.sources,
        maxKeysPerTransaction: config.triggers.maxKeysPerStatement,
        tables: this.tables,
        holdsTables: async () => (await Promise.all(this.tables.map((table) => table.writable()))).every(Boolean),
        onStreamReset: () => snapshots.listenerReset(),
        onStreamed: (position) => snapshots.streamReached(position),
        onFatal: (error) => this.stopOnFatal(error),
        events: this,
        logger,
      });
      this.source = logical;
      resumed = await logical.prepare();
      for (const table of this.tables) if (resumed.has(table.name)) await table.resume();
    }
    const pipeline = new ChangePipeline({
      tables: this.tables,
      mapper,
      snapshots,
      redis: this.storage.barrierMarks,
      keyPrefix: config.redis.keyPrefix,
      hashTags: new Map(config.tables.flatMap((table) => (table.hashTag === undefined ? [] : [[table.name, table.hashTag]]))),
      ...(config.redis.waitReplicas ? { barrierWaitReplicas: { replicas: config.redis.waitReplicas, timeoutMs: config.redis.waitTimeoutMs ?? 1_000 } } : {}),
      batchWindowMs: config.daemon.batchWindowMs,
      maxBatchKeys: config.daemon.maxBatchKeys,
      minReloadIntervalMs: config.daemon.minReloadIntervalMs,
      ...(config.daemon.maxQueuedKeysPerTable === undefined ? {} : { maxQueuedKeysPerTable: config.daemon.maxQueuedKeysPerTable }),
      events: this,
      logger,
      ...(options.storageCheckIntervalMs === undefined ? {} : { storageCheckIntervalMs: options.storageCheckIntervalMs }),
      refreshTimeoutMs: config.daemon.refreshTimeoutMs,
      loadTimeoutMs: config.daemon.loadTimeoutMs,
      ...(logical === null ? {} : { positions: logical }),
    });
    this.pipeline = pipeline;
    if (logical !== null) {
      await logical.start(pipeline, signal);
    } else {
      const notify = new NotifyChangeSource({
        config,
        pool: db.pool,
        mapper,
        snapshots,
        tables: this.tableNames,
        postgresDown: () => this.readinessTracker.isDown('postgres'),
        events: this,
        logger,
        listenerCheckMs: options.listenerCheckMs,
        queueCheckIntervalMs: options.queueCheckIntervalMs,
      });
      this.source = notify;
      await notify.start(pipeline, signal);
    }
    const captureCheck = new CaptureCheck({
      config,
      pool: db.pool,
      intervalMs: options.captureCheckIntervalMs ?? config.daemon.captureCheckIntervalMs,
      logger,
      events: this,
      requestReload: (tables, reason, kind) => pipeline.requestReload(tables, reason, kind),
      method: capture.method,
    });
    this.captureCheck = captureCheck;
    // Before the first load: the shapes it records are the baseline, so a change between them and the load's snapshot
    // shows up at the next check (a reload too many) rather than never.
    await captureCheck.start();
    pipeline.start('start', resumed);
    // Sampled on a timer, not only when /readyz asks: the hysteresis needs to know for how long the lag stayed low.
    this.lagSampler = setInterval(() => this.sampleLag(), options.lagSampleIntervalMs ?? 250);
    this.lagSampler.unref();
    logger.info({ tables: this.tableNames, channel: config.triggers.channel, storage: this.storage.description }, 'daemon started');
  }

  private sampleLag(): void {
    const now = performance.now();
    this.readinessTracker.sampleLag(this.oldestPendingChangeAges(now), now);
  }

  /**
   * Per table, the age (ms) of the oldest change the daemon received and has
   * not made visible to readers yet (0 when there is none): the
   * `tablecache_oldest_pending_change_seconds` gauge, and what `daemon.maxLagMs` bounds.
   */
  oldestPendingChangeAges(now = performance.now()): Map<string, number> {
    return this.pipeline?.oldestPendingChangeAges(now) ?? new Map(this.tableNames.map((name) => [name, 0]));
  }

  /**
   * A failure retrying cannot heal: emits `fatal` (the CLI exits with the
   * error's code) and stops, releasing the leases so that a standby, if its
   * setup differs, may take over.
   */
  private stopOnFatal(error: TablecacheError): void {
    if (this.closing !== null) return;
    this.logger.error({ err: error }, 'stopping: the change capture cannot go on without an operator');
    this.emit('fatal', { error });
    void this.close();
  }

  /** The replication slot's lag, retained WAL and the stream's silence (logical capture); `null` with triggers. */
  async captureSlotStatus(): Promise<CaptureSlotMetrics | null> {
    return this.source instanceof LogicalChangeSource ? this.source.slotStatus() : null;
  }

  /** Where the daemon is in its life. */
  get currentPhase(): DaemonPhase {
    return this.phase;
  }

  /** Whether every table is loaded, LISTEN is connected, and the daemon runs. */
  get isReady(): boolean {
    return this.readiness().ready;
  }

  /**
   * Whether the daemon serves current data, and if not, why not: what the
   * start waits for (Redis, Postgres, another daemon's lease), which tables
   * are loading (with rows read so far) or wait for a retry, which
   * connection is down.
   */
  readiness(): DaemonReadiness {
    const now = performance.now();
    return this.readinessTracker.readiness(
      {
        phase: this.phase,
        logicalCapture: this.source instanceof LogicalChangeSource,
        isLoaded: (name) => this.tables.find((sync) => sync.name === name)?.isLoaded ?? false,
        wasLoaded: (name) => this.pipeline?.wasLoaded(name) ?? false,
        captureProblems: () => this.captureCheck?.problems() ?? [],
        pendingReloads: () => this.pipeline?.pendingReloads() ?? new Map(),
        pendingChangeAges: () => this.oldestPendingChangeAges(now),
      },
      now,
    );
  }

  /** The names of the cached tables. */
  get tableNames(): string[] {
    return this.config.tables.map((table) => table.name);
  }

  /** Distinct changed keys queued and not applied yet, per table (0 before the start). */
  queuedKeys(): Map<string, number> {
    return this.pipeline?.queuedKeys() ?? new Map(this.tableNames.map((name) => [name, 0]));
  }

  /** Records readers see per table; `null` where the storage cannot tell now (not loaded, or not answering). */
  async recordCounts(): Promise<Map<string, number | null>> {
    const counts = await Promise.all(this.tables.map(async (table) => [table.name, await table.recordCount().catch(() => null)] as const));
    return new Map(counts);
  }

  /**
   * Stops: finishes the steps whose snapshot is open (a running load is
   * abandoned: readers keep the data published before it, and the next
   * daemon loads anew), stops listening, gives every lease up (the
   * published data stays for readers, and a standby takes over at once),
   * closes the connections. A start in progress is aborted. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const wasStarting = this.phase === 'starting';
    this.phase = 'stopping';
    // The pipeline learns first (release() waits for it), so that the load
    // abandoned next is not taken for a failure to retry.
    void this.pipeline?.stop();
    this.stopper.abort(new TablecacheError('TC_CLOSED', 'the daemon is stopping'));
    if (wasStarting) {
      // A start that fails releases everything itself; one that got through is released here.
      await this.starting?.then(
        () => this.release(),
        () => {},
      );
      this.phase = 'stopped';
      return;
    }
    await this.release();
    this.phase = 'stopped';
  }

  /**
   * Waits for the steps whose snapshot is open, then stops listening, gives
   * the leases up, closes the connections. The change source stays up until
   * the pipeline has stopped: a step waiting for its cut's proof gets it from
   * there (its tick, a writer's commit, the stream passing its snapshot);
   * closed first, that step waited for its tick's timeout.
   */
  private async release(): Promise<void> {
    if (this.lagSampler !== null) clearInterval(this.lagSampler);
    await this.captureCheck?.close();
    await this.pipeline?.stop();
    await this.source?.close();
    await this.snapshots?.close();
    await Promise.all(this.tables.map((table) => table.close().catch((error: unknown) => this.logger.warn({ err: error, table: table.name }, 'could not release the writer lease'))));
    await this.storage.close();
    await this.db?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
