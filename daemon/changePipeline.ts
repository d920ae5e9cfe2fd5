import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { BARRIER_MARK_TTL_MS, barrierMarkKey } from '../lib/client/barrier.ts';
import type { Logger } from '../lib/core/logger.ts';
import { ChangeBatch } from './changeBatch.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { DaemonEvents, ReloadKind, TableBatchResult } from './daemonEvents.ts';
import { errorSource } from './errorSource.ts';
import type { TableChanges } from './changeBatch.ts';
import { classifyNotification, payloadExcerpt, type Notification } from './notificationText.ts';
import { dropQueuedKeys, queuedKeysOf, queuedKeysPerTable } from './queuedKeys.ts';
import { ReloadThrottle } from './reloadThrottle.ts';
import type { TableRefreshCounts } from './tableSync.ts';

/** What the pipeline needs of a cached table ({@link TableSync} in the daemon). */
export interface SyncedTable {
  readonly name: string;
  /** Whether a load succeeded and no reload failed since. */
  readonly isLoaded: boolean;
  /** Loads every record anew; `reasons` are for its log line and events. */
  reload(reasons: readonly string[]): Promise<{ readonly records: number; readonly ms: number }>;
  refresh(changes: TableChanges): Promise<TableRefreshCounts>;
  /** Whether Redis still holds what the table published. */
  storageIntact(): Promise<boolean>;
}

/** Options of a {@link ChangePipeline}. */
export interface ChangePipelineOptions {
  readonly tables: readonly SyncedTable[];
  readonly mapper: ChangeMapper;
  /** Where barrier marks are written; absent when no reader can wait on them (in-process storage). */
  readonly redis?: Pick<Redis, 'pipeline'> | undefined;
  readonly keyPrefix: string;
  /**
   * How long the first notification of an idle pipeline waits for more to
   * join its batch. While a batch is being applied, arriving notifications
   * gather for the next one anyway, so under load batches grow by themselves.
   */
  readonly batchWindowMs: number;
  /** A batch takes notifications until their keys reach this many. */
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
 * The daemon's one loop: notifications are classified and mapped as they
 * arrive into the batch being gathered (so duplicates fold at once); the loop
 * takes batches in order and applies each to every table it touches — a
 * reload, or one refresh of all its keys — then marks the batch's barriers.
 *
 * One batch at a time, in arrival order: a barrier is marked only after every
 * change received before it is visible, and a reload that starts after a
 * batch's notifications arrived includes all of their changes, so the keys of
 * a reloaded table are dropped from its batch. A table whose reload or
 * refresh fails is reloaded in the next batch, after a growing pause; its
 * barriers wait for that.
 */
export class ChangePipeline {
  private readonly batches: ChangeBatch[] = [];
  /** The batch being applied. */
  private inFlight: ChangeBatch | null = null;
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
  /** Per queued batch, the trigger time of its oldest change. */
  private readonly oldestChangeAt = new WeakMap<ChangeBatch, number>();
  private readonly maxQueuedKeysPerTable: number;
  private readonly throttle: ReloadThrottle;
  /** Sends a notification's reload requests through the throttle. */
  private readonly throttledReload = (table: string, reason: string, kind: ReloadKind): void => this.requestThrottledReload(table, reason, kind);

  constructor(private readonly options: ChangePipelineOptions) {
    this.tables = new Map(options.tables.map((table) => [table.name, table]));
    this.maxQueuedKeys = options.maxQueuedKeys ?? 50 * options.maxBatchKeys;
    this.maxQueuedKeysPerTable = options.maxQueuedKeysPerTable ?? 5 * options.maxBatchKeys;
    this.storageCheckIntervalMs = options.storageCheckIntervalMs ?? 1_000;
    this.throttle = new ReloadThrottle({
      minIntervalMs: options.minReloadIntervalMs ?? 0,
      onDue: (table, reload, barriers) => {
        const batch = this.gathering();
        const changes = batch.table(table);
        for (const reason of reload.reasons) changes.requestReload(reason, [...reload.kinds][0]!);
        for (const kind of reload.kinds) changes.reloadKinds.add(kind);
        batch.barriers.push(...barriers);
        this.options.logger.info({ table, reasons: [...reload.reasons] }, 'reloading after the least interval between reloads');
        this.wake?.();
      },
    });
  }

  /** Distinct keys waiting to be refreshed, per table (queued batches, not the one in flight). */
  queuedKeys(): Map<string, number> {
    return queuedKeysPerTable(this.batches, this.tables.keys());
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
    for (const batch of this.inFlight === null ? this.batches : [this.inFlight, ...this.batches]) {
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

  /** Starts the loop. The first batch reloads every table (`reason`), with whatever notifications arrived meanwhile. */
  start(reason: string): void {
    this.requestReload(null, reason, 'start');
    this.loop ??= this.run();
  }

  /** Takes the raw text of one notification. */
  push(text: string): void {
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
        if (!this.throttle.holdBarrier(notification.payload.id)) this.gathering().barriers.push(notification.payload.id);
        break;
      case 'change': {
        const batch = this.gathering();
        batch.notifications++;
        batch.changeTimes.push(notification.payload.ts);
        this.options.mapper.map(notification.payload, batch, this.throttledReload);
        const oldest = this.oldestChangeAt.get(batch);
        if (oldest === undefined || notification.payload.ts < oldest) this.oldestChangeAt.set(batch, notification.payload.ts);
        if (notification.payload.op !== 'T' && notification.payload.op !== 'X') this.boundQueuedKeys(this.options.mapper.tablesOf(notification.payload.t));
        break;
      }
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
    this.gathering().table(table).requestReload(reason, kind);
    this.wake?.();
  }

  /**
   * Bounds the memory a flood of key payloads can take: past
   * `maxQueuedKeysPerTable` distinct keys queued for a table, they are
   * dropped and the table is reloaded instead (throttled like any reload a
   * notification asks for; a deferred reload covers the keys dropped
   * meanwhile, since it starts after they arrived).
   */
  private boundQueuedKeys(tables: readonly string[]): void {
    for (const name of tables) {
      const queued = queuedKeysOf(this.batches, name);
      if (queued <= this.maxQueuedKeysPerTable) continue;
      dropQueuedKeys(this.batches, name);
      this.options.logger.warn({ table: name, queuedKeys: queued, bound: this.maxQueuedKeysPerTable }, 'too many changed keys queued for a table; reloading it instead');
      this.requestThrottledReload(name, `more than ${this.maxQueuedKeysPerTable} changed keys were queued`, 'key_flood');
    }
  }

  /** Reloads `tables` (every table when `null`) in the next batch; `kind` is the reason's class for metrics. */
  requestReload(tables: readonly string[] | null, reason: string, kind: ReloadKind): void {
    const batch = this.gathering();
    for (const table of tables ?? this.tables.keys()) batch.table(table).requestReload(reason, kind);
    this.wake?.();
  }

  /** Finishes the batch in flight and stops; queued batches are dropped (the next start reloads everything). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.throttle.close();
    this.wake?.();
    await this.loop;
  }

  /** The batch notifications are gathered into: the newest queued one, unless it is full. */
  private gathering(): ChangeBatch {
    const last = this.batches.at(-1);
    if (last !== undefined && last.receivedKeys < this.options.maxBatchKeys) return last;
    const batch = new ChangeBatch();
    this.batches.push(batch);
    return batch;
  }

  /**
   * Bounds memory when the daemon falls behind (Postgres slow, a standby
   * wait): queued key changes are replaced by one reload of every table,
   * which costs the same as catching up and holds nothing per key.
   */
  private collapseIfBehind(): void {
    const queued = this.batches.reduce((sum, batch) => sum + batch.receivedKeys, 0);
    if (queued <= this.maxQueuedKeys) return;
    const collapsed = new ChangeBatch();
    for (const batch of this.batches) {
      collapsed.barriers.push(...batch.barriers);
      for (const time of batch.changeTimes) collapsed.changeTimes.push(time);
    }
    for (const table of this.tables.keys()) collapsed.table(table).requestReload(`the daemon fell behind by ${queued} keys`, 'fell_behind');
    this.options.logger.warn({ queuedKeys: queued }, 'fell behind; replacing the queued changes by a reload of every table');
    this.batches.length = 0;
    this.batches.push(collapsed);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.batches.length === 0) await this.waitForWork(this.storageCheckIntervalMs);
      if (this.stopping) return;
      await this.checkStorage();
      const first = this.batches[0];
      if (first === undefined) continue;
      await this.waitForWindow(first);
      const batch = this.batches.shift()!;
      this.coverByReloads(batch);
      this.inFlight = batch;
      const failed = await this.apply(batch).finally(() => {
        this.inFlight = null;
      });
      if (this.stopping) return;
      if (failed > 0) await this.pauseAfterFailure();
      else this.consecutiveFailures = 0;
    }
  }

  /**
   * Every notification queued now arrived before the batch's reloads start,
   * so the reloads include their changes: queued work for a table about to be
   * reloaded is dropped (keys and further reloads alike). What arrives from
   * now on is kept.
   */
  private coverByReloads(batch: ChangeBatch): void {
    for (const [name, changes] of batch.entries()) {
      if (!changes.needsReload && this.tables.get(name)?.isLoaded !== false) continue;
      for (const queued of this.batches) queued.forget(name);
      // It covers a deferred reload too; barriers that waited only for that one are marked with this batch.
      batch.barriers.push(...this.throttle.reloadStarted(name));
    }
  }

  private waitForWork(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  /** Lets a young batch gather more notifications, unless it is full or the daemon is stopping. */
  private async waitForWindow(batch: ChangeBatch): Promise<void> {
    for (;;) {
      const left = batch.startedAt + this.options.batchWindowMs - performance.now();
      if (left <= 0 || this.stopping || batch.receivedKeys >= this.options.maxBatchKeys || this.batches.length > 1) return;
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

  /** Applies a batch; returns how many tables failed (they are reloaded in the next batch). */
  private async apply(batch: ChangeBatch): Promise<number> {
    const results: TableBatchResult[] = [];
    const failed: string[] = [];
    for (const [name, changes] of batch.entries()) {
      const table = this.tables.get(name);
      if (table === undefined) continue;
      const reload = changes.needsReload || !table.isLoaded;
      try {
        if (reload) {
          const reasons = changes.needsReload ? [...changes.reloadReasons] : ['its last reload failed'];
          const kinds: ReloadKind[] = changes.needsReload ? [...changes.reloadKinds] : ['failure'];
          const { records, ms } = await table.reload(reasons);
          results.push({ table: name, action: 'reload', keys: 0, expired: 0, loaded: records });
          this.reportLoaded(name, records, ms, reasons, kinds);
        } else {
          const counts = await table.refresh(changes);
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
      oldestChangeAt: this.oldestChangeAt.get(batch) ?? null,
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
