import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { BARRIER_MARK_TTL_MS, barrierMarkKey } from '../lib/client/barrier.ts';
import type { Logger } from '../lib/core/logger.ts';
import type { ChangeBatch, TableChanges } from './changeBatch.ts';
import { ChangeQueue } from './changeQueue.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { DaemonEvents, ReloadKind, TableBatchResult } from './daemonEvents.ts';
import { errorSource } from './errorSource.ts';
import { classifyNotification, payloadExcerpt, type Notification } from './notificationText.ts';
import { ReloadThrottle } from './reloadThrottle.ts';
import type { StepSnapshot, StepSnapshotSource } from './stepSnapshot.ts';
import type { TableRefreshCounts } from './tableSync.ts';

/** What the pipeline needs of a cached table ({@link TableSync} in the daemon). */
export interface SyncedTable {
  readonly name: string;
  /** Whether a load succeeded and no reload failed since. */
  readonly isLoaded: boolean;
  /** Loads every record anew, reading `snapshot`; `reasons` are for its log line and events. */
  reload(reasons: readonly string[], snapshot: StepSnapshot): Promise<{ readonly records: number; readonly ms: number }>;
  /** Refreshes the records `changes` names, reading them (and resolving keys) in `snapshot`. */
  refresh(changes: TableChanges, snapshot: StepSnapshot): Promise<TableRefreshCounts>;
  /** Whether Redis still holds what the table published. */
  storageIntact(): Promise<boolean>;
}

/** Options of a {@link ChangePipeline}. */
export interface ChangePipelineOptions {
  readonly tables: readonly SyncedTable[];
  readonly mapper: ChangeMapper;
  /** Gives each step its snapshot S and makes sure every notification visible in S has arrived. */
  readonly snapshots: StepSnapshotSource;
  /** Where barrier marks are written; absent when no reader can wait on them (in-process storage). */
  readonly redis?: Pick<Redis, 'pipeline'> | undefined;
  readonly keyPrefix: string;
  /**
   * How long the first notification of an idle pipeline waits for more to
   * join its batch. While a batch is being applied, arriving notifications
   * gather for the next one anyway, so under load batches grow by themselves.
   */
  readonly batchWindowMs: number;
  /** Queued keys at which a gathering step stops waiting for its window. */
  readonly maxBatchKeys: number;
  /** Queued keys beyond which the queue is replaced by one reload of every table (default 50 × `maxBatchKeys`). */
  readonly maxQueuedKeys?: number;
  /**
   * Least time between two reloads of one table that notifications ask for
   * (coarse, truncate, unknown version, unmappable keys, key flood); more
   * requests within it are coalesced into one reload at its end (default 0:
   * no limit). See {@link ReloadThrottle}.
   */
  readonly minReloadIntervalMs?: number;
  /**
   * Distinct keys queued for one table beyond which they are dropped and the
   * table is reloaded instead (kind `key_flood`), bounding memory under a
   * flood of key payloads (default 5 × `maxBatchKeys`).
   */
  readonly maxQueuedKeysPerTable?: number;
  /** How often Redis is checked for lost data (default 1,000 ms). */
  readonly storageCheckIntervalMs?: number;
  /** Where events go. */
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * The daemon's one loop, in steps. Each step:
 *
 * 1. takes the barriers and reload requests received so far;
 * 2. opens a snapshot S ({@link StepSnapshotSource}: a tick NOTIFY that
 *    committed after S was taken makes sure every notification of a
 *    transaction visible in S has arrived);
 * 3. cuts the queue: the change notifications whose transaction is visible
 *    in S are mapped into one {@link ChangeBatch} (duplicates fold); the
 *    rest stay queued for a later step;
 * 4. applies the batch to every table it touches, all reads in S — a reload,
 *    or one refresh of all its keys, one merge per table;
 * 5. marks the barriers of step 1 (everything committed before a barrier
 *    that arrived before S was opened is visible in S, so it is applied).
 *
 * So after every step each table in Redis is the query's result in S: whole
 * transactions only, never two snapshots mixed (design invariant 7). Steps
 * take their snapshots one after another, so what readers see never goes
 * back in time, also from a reload to the refresh after it.
 *
 * A table whose reload or refresh fails is reloaded in a later step, after a
 * growing pause; its barriers wait for that. A step whose snapshot cannot be
 * had (Postgres down, the tick lost with the LISTEN connection) changes
 * nothing and is retried.
 *
 * Tables share a step today; the per-table state (`TableChanges`, the
 * reload requests) is kept per table so that tables could later step on
 * their own snapshots.
 */
export class ChangePipeline {
  /** What was received and not applied yet. */
  private readonly queue = new ChangeQueue();
  /** The batch being applied. */
  private inFlight: ChangeBatch | null = null;
  /** The last step's snapshot, being closed. */
  private closingSnapshot: Promise<void> = Promise.resolve();
  private readonly tables: ReadonlyMap<string, SyncedTable>;
  private readonly loadedOnce = new Set<string>();
  private deferredBarriers: string[] = [];
  private wake: (() => void) | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private consecutiveFailures = 0;
  private lastStorageCheck = performance.now();
  private readonly maxQueuedKeys: number;
  private readonly storageCheckIntervalMs: number;
  private readonly maxQueuedKeysPerTable: number;
  private readonly throttle: ReloadThrottle;

  constructor(private readonly options: ChangePipelineOptions) {
    this.tables = new Map(options.tables.map((table) => [table.name, table]));
    this.maxQueuedKeys = options.maxQueuedKeys ?? 50 * options.maxBatchKeys;
    this.maxQueuedKeysPerTable = options.maxQueuedKeysPerTable ?? 5 * options.maxBatchKeys;
    this.storageCheckIntervalMs = options.storageCheckIntervalMs ?? 1_000;
    this.throttle = new ReloadThrottle({
      minIntervalMs: options.minReloadIntervalMs ?? 0,
      onDue: (table, reload, barriers) => {
        for (const reason of reload.reasons) this.queue.requestReload([table], reason, [...reload.kinds][0]!);
        for (const kind of reload.kinds) this.queue.requestedReloads.table(table).reloadKinds.add(kind);
        for (const id of barriers) this.queue.addBarrier(id);
        this.options.logger.info({ table, reasons: [...reload.reasons] }, 'reloading after the least interval between reloads');
        this.wake?.();
      },
    });
  }

  /** Keys waiting for a step, per table (queued changes, not the step in flight). */
  queuedKeys(): Map<string, number> {
    const queued = new Map<string, number>([...this.tables.keys()].map((name) => [name, 0]));
    for (const [source, keys] of this.queue.keysPerSource()) {
      for (const name of this.options.mapper.tablesOf(source)) queued.set(name, (queued.get(name) ?? 0) + keys);
    }
    return queued;
  }

  /** Whether `table` was loaded once: readers see a complete load of it, even while it is reloaded. */
  wasLoaded(table: string): boolean {
    return this.loadedOnce.has(table);
  }

  /** Whether every table has been loaded once and none waits for a reload after a failure. */
  get isCaughtUp(): boolean {
    return this.loadedOnce.size === this.tables.size && [...this.tables.values()].every((table) => table.isLoaded);
  }

  /** Per table, the reloads requested and not finished yet (queued, or in flight): their reasons and kinds. */
  pendingReloads(): Map<string, { readonly reasons: string[]; readonly kinds: ReloadKind[] }> {
    const pending = new Map<string, { reasons: string[]; kinds: ReloadKind[] }>();
    for (const batch of this.inFlight === null ? [this.queue.requestedReloads] : [this.inFlight, this.queue.requestedReloads]) {
      for (const [name, changes] of batch.entries()) {
        if (!changes.needsReload) continue;
        const entry = pending.get(name) ?? { reasons: [], kinds: [] };
        for (const reason of changes.reloadReasons) if (!entry.reasons.includes(reason)) entry.reasons.push(reason);
        for (const kind of changes.reloadKinds) if (!entry.kinds.includes(kind)) entry.kinds.push(kind);
        pending.set(name, entry);
      }
    }
    for (const [name, reload] of this.throttle.deferred()) {
      const entry = pending.get(name) ?? { reasons: [], kinds: [] };
      for (const reason of reload.reasons) if (!entry.reasons.includes(reason)) entry.reasons.push(`${reason} (deferred: at most one reload per interval)`);
      for (const kind of reload.kinds) if (!entry.kinds.includes(kind)) entry.kinds.push(kind);
      pending.set(name, entry);
    }
    return pending;
  }

  /** Starts the loop. The first step reloads every table (`reason`), with whatever notifications arrived meanwhile. */
  start(reason: string): void {
    this.requestReload(null, reason, 'start');
    this.loop ??= this.run();
  }

  /** Takes the raw text of one notification. */
  push(text: string): void {
    if (this.options.snapshots.acceptTick(text)) return;
    this.pushClassified(classifyNotification(text));
  }

  /** Takes one notification, classified already (by whoever checked its sender first). */
  pushClassified(notification: Notification): void {
    this.options.events.emit('notificationReceived', { kind: notification.kind });
    switch (notification.kind) {
      case 'malformed':
        this.options.logger.warn({ payload: notification.excerpt, problem: notification.error }, 'skipped a malformed notification payload');
        this.options.events.emit('malformedPayload', { excerpt: notification.excerpt, error: notification.error });
        for (const table of notification.table === undefined ? [] : this.options.mapper.tablesOf(notification.table)) {
          this.requestThrottledReload(table, `a payload of ${notification.table} too deeply nested to read`, 'unmappable_key');
        }
        return;
      case 'unknownVersion': {
        const tables = notification.table === null ? [...this.tables.keys()] : this.options.mapper.tablesOf(notification.table);
        this.options.logger.warn({ version: notification.version, table: notification.table }, 'a payload of an unknown format version; reloading what it may affect');
        const reason = `a payload of unknown format version ${payloadExcerpt(JSON.stringify(notification.version) ?? 'undefined')}`;
        for (const table of tables) this.requestThrottledReload(table, reason, 'unknown_payload_version');
        return;
      }
      case 'barrier':
        this.queue.addBarrier(notification.payload.id);
        break;
      case 'change':
        this.queue.addChange(notification.payload);
        if (notification.payload.op !== 'T' && notification.payload.op !== 'X') this.boundQueuedKeys(notification.payload.t);
        break;
    }
    this.collapseIfBehind();
    this.wake?.();
  }

  /**
   * Reloads `tables` like a reload a notification asks for (throttled by
   * `minReloadIntervalMs`): for a change whose sender could not be checked.
   */
  requestNotifiedReload(tables: readonly string[], reason: string, kind: ReloadKind): void {
    for (const table of tables) this.requestThrottledReload(table, reason, kind);
  }

  /**
   * A reload a notification asks for: queued now, unless the table was
   * reloaded less than `minReloadIntervalMs` ago; then it is deferred to the
   * end of the interval (never dropped), joined by every request meanwhile.
   */
  private requestThrottledReload(table: string, reason: string, kind: ReloadKind): void {
    if (!this.tables.has(table)) return;
    if (!this.throttle.admit(table, reason, kind)) return;
    this.queue.requestReload([table], reason, kind);
    this.wake?.();
  }

  /**
   * Bounds the memory a flood of key payloads can take: past
   * `maxQueuedKeysPerTable` keys queued from one source table, its queued
   * changes are dropped and the tables it feeds are reloaded instead
   * (throttled like any reload a notification asks for; the reload's
   * snapshot is taken after the dropped changes arrived, so it holds them).
   */
  private boundQueuedKeys(sourceTable: string): void {
    const queued = this.queue.keysFrom(sourceTable);
    if (queued <= this.maxQueuedKeysPerTable) return;
    this.queue.dropChangesFrom(sourceTable);
    for (const name of this.options.mapper.tablesOf(sourceTable)) {
      this.options.logger.warn({ table: name, source: sourceTable, queuedKeys: queued, bound: this.maxQueuedKeysPerTable }, 'too many changed keys queued for a table; reloading it instead');
      this.requestThrottledReload(name, `more than ${this.maxQueuedKeysPerTable} changed keys were queued`, 'key_flood');
    }
  }

  /** Reloads `tables` (every table when `null`) in the next step; `kind` is the reason's class for metrics. */
  requestReload(tables: readonly string[] | null, reason: string, kind: ReloadKind): void {
    this.queue.requestReload(tables ?? this.tables.keys(), reason, kind);
    this.wake?.();
  }

  /** Finishes the step in flight and stops; queued work is dropped (the next start reloads everything). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.throttle.close();
    this.wake?.();
    await this.loop;
    await this.closingSnapshot;
  }

  /**
   * Bounds memory when the daemon falls behind (Postgres slow, a standby
   * wait): queued changes are replaced by one reload of every table, which
   * costs the same as catching up and holds nothing per key. Every queued
   * change has committed, so the reload's snapshot includes it.
   */
  private collapseIfBehind(): void {
    if (this.queue.queuedKeys <= this.maxQueuedKeys) return;
    const queued = this.queue.dropChanges();
    this.options.logger.warn({ queuedKeys: queued }, 'fell behind; replacing the queued changes by a reload of every table');
    this.requestReload(null, `the daemon fell behind by ${queued} keys`, 'fell_behind');
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (!this.queue.hasWork) await this.waitForWork(this.storageCheckIntervalMs);
      if (this.stopping) return;
      await this.checkStorage();
      if (!this.queue.hasWork) continue;
      await this.waitForWindow();
      if (this.stopping) return;
      const failed = await this.step();
      if (this.stopping) return;
      if (failed > 0) await this.pauseAfterFailure();
      else this.consecutiveFailures = 0;
    }
  }

  /** One step: snapshot, cut, apply, barriers. Returns how many tables (or the snapshot) failed. */
  private async step(): Promise<number> {
    // Taken before S is opened: everything committed before these barriers and requests is visible in S.
    const start = this.queue.takeStart();
    // Until the batch is cut, its reloads are the ones in flight (health reports them as pending).
    this.inFlight = start.reloads;
    let snapshot: StepSnapshot;
    try {
      snapshot = await this.options.snapshots.open();
    } catch (error) {
      this.inFlight = null;
      this.queue.giveBack(start);
      this.reportError(error, 'opening a snapshot for the next step');
      return 1;
    }
    try {
      for (const [name, table] of this.tables) {
        if (!table.isLoaded && !start.reloads.table(name).needsReload) start.reloads.table(name).requestReload('its last reload failed', 'failure');
      }
      const batch = this.queue.cut(start, snapshot, this.options.mapper, (table, reason, kind) => this.throttle.admit(table, reason, kind));
      this.holdDeferredTables(batch);
      this.inFlight = batch;
      return await this.apply(batch, snapshot);
    } finally {
      this.inFlight = null;
      // Ending the read-only transaction is off the path to the next step (close never rejects).
      this.closingSnapshot = snapshot.close();
    }
  }

  /**
   * Throttle bookkeeping for a cut batch. A table reloaded in this step
   * covers its deferred reload (barriers that waited only for that one are
   * marked with this step). A table whose reload is still deferred stays at
   * its last step: its keys are dropped from the batch, since refreshing
   * part of what the deferred reload stands for would publish part of a
   * transaction; the deferred reload, in a later snapshot, holds them. And
   * while any reload is deferred, this step's barriers wait for it.
   */
  private holdDeferredTables(batch: ChangeBatch): void {
    const released: string[] = [];
    for (const [name, changes] of batch.entries()) {
      if (changes.needsReload || this.tables.get(name)?.isLoaded === false) released.push(...this.throttle.reloadStarted(name));
    }
    for (const name of this.throttle.deferred().keys()) batch.forget(name);
    const waiting = batch.barriers.filter((id) => this.throttle.holdBarrier(id));
    batch.barriers.splice(0, batch.barriers.length, ...batch.barriers.filter((id) => !waiting.includes(id)), ...released);
  }

  private waitForWork(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.wake = done;
    });
  }

  /** Lets young work gather more notifications, unless enough keys are queued or the daemon is stopping. */
  private async waitForWindow(): Promise<void> {
    for (;;) {
      const left = (this.queue.queuedSince ?? 0) + this.options.batchWindowMs - performance.now();
      if (left <= 0 || this.stopping || this.queue.queuedKeys >= this.options.maxBatchKeys) return;
      await this.waitForWork(left);
    }
  }

  private async pauseAfterFailure(): Promise<void> {
    const delayMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.consecutiveFailures, 20));
    this.consecutiveFailures++;
    this.options.logger.warn({ retryInMs: delayMs }, 'retrying the failed tables after a pause');
    const until = performance.now() + delayMs;
    while (!this.stopping && performance.now() < until) await this.waitForWork(until - performance.now());
  }

  /** Applies a batch in `snapshot`; returns how many tables failed (they are reloaded in a later step). */
  private async apply(batch: ChangeBatch, snapshot: StepSnapshot): Promise<number> {
    const results: TableBatchResult[] = [];
    const failed: string[] = [];
    const entries = batch.entries();
    // With several tables, one table's failed read must not abort the snapshot for the others.
    const isolate = entries.length > 1 ? <T>(work: () => Promise<T>) => snapshot.isolate(work) : <T>(work: () => Promise<T>) => work();
    for (const [name, changes] of entries) {
      const table = this.tables.get(name);
      if (table === undefined) continue;
      const reload = changes.needsReload;
      try {
        if (reload) {
          const reasons = [...changes.reloadReasons];
          const kinds: ReloadKind[] = [...changes.reloadKinds];
          const { records, ms } = await isolate(() => table.reload(reasons, snapshot));
          results.push({ table: name, action: 'reload', keys: 0, expired: 0, loaded: records });
          this.reportLoaded(name, records, ms, reasons, kinds);
        } else {
          const counts = await isolate(() => table.refresh(changes, snapshot));
          results.push({ table: name, action: 'refresh', ...counts });
        }
      } catch (error) {
        failed.push(name);
        this.reportError(error, `${reload ? 'reloading' : 'refreshing'} table ${name}`, name);
      }
    }
    const barriers = [...this.deferredBarriers, ...batch.barriers];
    this.deferredBarriers = [];
    if (failed.length > 0) {
      this.requestReload(failed, 'recovering from a failed refresh or reload', 'failure');
      this.deferredBarriers = barriers;
    } else {
      await this.markBarriers(barriers);
    }
    this.options.events.emit('batchApplied', {
      notifications: batch.notifications,
      receivedKeys: batch.receivedKeys,
      tables: results,
      barriers: failed.length > 0 ? 0 : barriers.length,
      ms: performance.now() - batch.startedAt,
      tickMs: snapshot.tickMs,
      oldestChangeAt: batch.changeTimes.reduce<number | null>((oldest, time) => (oldest === null || time < oldest ? time : oldest), null),
      changeTimes: failed.length > 0 ? [] : batch.changeTimes,
    });
    return failed.length;
  }

  private async markBarriers(ids: readonly string[]): Promise<void> {
    if (ids.length === 0 || this.options.redis === undefined) return;
    const pipeline = this.options.redis.pipeline();
    for (const id of ids) pipeline.set(barrierMarkKey(this.options.keyPrefix, id), '1', 'PX', BARRIER_MARK_TTL_MS);
    try {
      const replies = (await pipeline.exec()) ?? [];
      const failure = replies.find(([error]) => error !== null);
      if (failure) throw failure[0];
    } catch (error) {
      this.deferredBarriers.unshift(...ids);
      this.reportError(error, 'marking barriers');
    }
  }

  /** Every `storageCheckIntervalMs`, asks each loaded table whether Redis still holds its data; reloads those that lost it. */
  private async checkStorage(): Promise<void> {
    if (performance.now() - this.lastStorageCheck < this.storageCheckIntervalMs) return;
    this.lastStorageCheck = performance.now();
    for (const table of this.tables.values()) {
      if (!table.isLoaded) continue;
      try {
        if (!(await table.storageIntact())) {
          this.options.logger.warn({ table: table.name }, 'Redis no longer holds the published data (flushed, restarted or taken over); reloading');
          this.requestReload([table.name], 'Redis lost the published data', 'storage_lost');
        }
      } catch (error) {
        this.reportError(error, `checking table ${table.name} in Redis`, table.name);
      }
    }
  }

  private reportLoaded(table: string, records: number, ms: number, reasons: readonly string[], kinds: readonly ReloadKind[]): void {
    const first = !this.loadedOnce.has(table);
    this.loadedOnce.add(table);
    const rowsPerSecond = ms > 0 ? Math.round((records * 1000) / ms) : null;
    this.options.logger.info({ table, records, ms: Math.round(ms), rowsPerSecond, reasons }, first ? 'table loaded' : 'table reloaded');
    this.options.events.emit(first ? 'loaded' : 'reloaded', { table, records, ms, reasons, kinds });
  }

  private reportError(error: unknown, during: string, table?: string): void {
    if (this.stopping) {
      // A stop abandons a running load on purpose (readers keep the data published before it).
      this.options.logger.info({ table, cause: error instanceof Error ? error.message : String(error) }, `stopped ${during}: the daemon is stopping`);
      return;
    }
    this.options.logger.error({ err: error, table }, `failed ${during}; will retry`);
    if (this.options.events.listenerCount('error') > 0) {
      this.options.events.emit('error', { error, during, source: errorSource(error), ...(table === undefined ? {} : { table }) });
    }
  }
}
