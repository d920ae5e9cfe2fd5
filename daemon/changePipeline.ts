import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/core/logger.ts';
import { BarrierTracker } from './barrierTracker.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { DaemonEvents, ReloadKind } from './daemonEvents.ts';
import { errorSource } from './errorSource.ts';
import { classifyNotification, payloadExcerpt, type Notification } from './notificationText.ts';
import type { NotificationSender, StepSnapshotSource } from './stepSnapshot.ts';
import type { SyncedTable } from './syncedTable.ts';
import { TableStepLoop, type CapturePositions } from './tableStepLoop.ts';
import type { ChangePayload } from '../sql-triggers/payload.ts';

export type { SyncedTable } from './syncedTable.ts';

/** Options of a {@link ChangePipeline}. */
export interface ChangePipelineOptions {
  readonly tables: readonly SyncedTable[];
  readonly mapper: ChangeMapper;
  /** Gives each step its snapshot S and makes sure every notification visible in S has arrived. */
  readonly snapshots: StepSnapshotSource;
  /** Where barrier marks are written; absent when no reader can wait on them (in-process storage). */
  readonly redis?: Pick<Redis, 'pipeline'> | undefined;
  readonly keyPrefix: string;
  /** The hash tags of tables placed with one (`tables.<name>.hashTag`): their barrier marks live there. */
  readonly hashTags?: ReadonlyMap<string, string> | undefined;
  /** Replicas that must have a table's barrier marks before a barrier is marked for all tables (`redis.waitReplicas`). */
  readonly barrierWaitReplicas?: { readonly replicas: number; readonly timeoutMs: number } | undefined;
  /**
   * A table's least time between the starts of two steps: the first
   * notification of an idle table waits this long for more to join its
   * batch, and under continuous changes its steps start at most once per
   * window. With 0, notifications arriving while a batch is applied gather
   * for the next one, so batches still grow with the load.
   */
  readonly batchWindowMs: number;
  /** Queued keys at which a gathering step stops waiting for its window. */
  readonly maxBatchKeys: number;
  /** Keys queued for one table beyond which they are replaced by one reload of it (default 50 × `maxBatchKeys`). */
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
  /** Statement timeout of a refresh step's queries (`resolve` and refresh), in ms (default 0: none). */
  readonly refreshTimeoutMs?: number;
  /** Statement timeout of each query of a reload (each cursor fetch of a load), in ms (default 0: none). */
  readonly loadTimeoutMs?: number;
  /** Where events go. */
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
  /** The change source's positions (logical capture). */
  readonly positions?: CapturePositions;
}

/**
 * The daemon's pipeline: takes every notification, and runs one
 * {@link TableStepLoop} per cached table, each stepping on its own
 * snapshots, so that a table whose query is slow, failing or timing out
 * never holds back another (issue #18). Within a table, steps keep their
 * order and their guarantee: after every step the table in Redis is its
 * query's result in one snapshot S, whole transactions only (design
 * invariant 7), and its snapshots only move forward.
 *
 * Shared here: the classification of notifications, the routing of a
 * change to every table its source feeds (each table cuts it in its own
 * step), and barriers ({@link BarrierTracker}): a barrier is marked once
 * every table has applied a step whose snapshot was opened after it
 * arrived; while it waits on a slow or failing table, that table is named
 * beside its mark.
 */
export class ChangePipeline {
  private readonly loops: ReadonlyMap<string, TableStepLoop>;
  private readonly barriers: BarrierTracker;
  private started = false;

  constructor(private readonly options: ChangePipelineOptions) {
    const names = options.tables.map((table) => table.name);
    this.barriers = new BarrierTracker({
      tables: names,
      redis: options.redis,
      keyPrefix: options.keyPrefix,
      hashTags: options.hashTags,
      onError: (error, during) => this.reportError(error, during),
      waitReplicas: options.barrierWaitReplicas,
      onReplicasBehind: (detail) => this.options.logger.warn({}, detail),
    });
    const loopOptions = {
      mapper: options.mapper,
      snapshots: options.snapshots,
      barriers: this.barriers,
      batchWindowMs: options.batchWindowMs,
      maxBatchKeys: options.maxBatchKeys,
      maxQueuedKeys: options.maxQueuedKeys ?? 50 * options.maxBatchKeys,
      maxQueuedKeysPerTable: options.maxQueuedKeysPerTable ?? 5 * options.maxBatchKeys,
      minReloadIntervalMs: options.minReloadIntervalMs ?? 0,
      storageCheckIntervalMs: options.storageCheckIntervalMs ?? 1_000,
      refreshTimeoutMs: options.refreshTimeoutMs ?? 0,
      loadTimeoutMs: options.loadTimeoutMs ?? 0,
      events: options.events,
      logger: options.logger,
      positions: options.positions,
    };
    this.loops = new Map(options.tables.map((table) => [table.name, new TableStepLoop({ ...loopOptions, table })]));
  }

  /** Keys waiting for a step, per table (queued changes, not the step in flight). */
  queuedKeys(): Map<string, number> {
    return new Map([...this.loops].map(([name, loop]) => [name, loop.queuedKeys]));
  }

  /**
   * Per table, how long ago (ms) the oldest change it received and has not
   * made visible yet arrived; 0 when every change it received is visible.
   */
  oldestPendingChangeAges(now = performance.now()): Map<string, number> {
    return new Map(
      [...this.loops].map(([name, loop]) => {
        const since = loop.oldestPendingChangeAt;
        return [name, since === null ? 0 : Math.max(0, now - since)];
      }),
    );
  }

  /** The tables barrier `id` still waits for (empty when it was marked, or is unknown). */
  barrierWaitingOn(id: string): string[] {
    return this.barriers.waitingOn(id);
  }

  /** Whether `table` was loaded once: readers see a complete load of it, even while it is reloaded. */
  wasLoaded(table: string): boolean {
    return this.loops.get(table)?.wasLoaded ?? false;
  }

  /** Whether every table has been loaded once and none waits for a reload after a failure. */
  get isCaughtUp(): boolean {
    return [...this.loops.values()].every((loop) => loop.isCaughtUp);
  }

  /** Per table, the reloads requested and not finished yet (queued, or in flight): their reasons and kinds. */
  pendingReloads(): Map<string, { readonly reasons: string[]; readonly kinds: ReloadKind[] }> {
    const pending = new Map<string, { reasons: string[]; kinds: ReloadKind[] }>();
    for (const [name, loop] of this.loops) {
      const reload = loop.pendingReload();
      if (reload !== undefined) pending.set(name, reload);
    }
    return pending;
  }

  /**
   * Starts every table's loop. The first step of each reloads it (`reason`),
   * with whatever notifications arrived meanwhile; `resumed` tables (logical
   * capture: Redis holds their generation and position) are not reloaded.
   */
  start(reason: string, resumed: ReadonlySet<string> = new Set()): void {
    for (const [name, loop] of this.loops) {
      if (resumed.has(name)) loop.markResumed();
      else loop.requestReload(reason, 'start');
    }
    if (this.started) return;
    this.started = true;
    for (const loop of this.loops.values()) loop.start();
  }

  /** Takes the raw text of one notification, and who sent it (LISTEN tells). */
  push(text: string, sender?: NotificationSender): void {
    if (this.options.snapshots.acceptTick(text)) return;
    this.pushClassified(classifyNotification(text), sender);
  }

  /** Takes one notification, classified already (by whoever checked its sender first). */
  pushClassified(notification: Notification, sender?: NotificationSender): void {
    this.options.events.emit('notificationReceived', { kind: notification.kind });
    switch (notification.kind) {
      case 'malformed':
        this.options.logger.warn({ payload: notification.excerpt, problem: notification.error }, 'skipped a malformed notification payload');
        this.options.events.emit('malformedPayload', { excerpt: notification.excerpt, error: notification.error });
        for (const table of notification.table === undefined ? [] : this.options.mapper.tablesOf(notification.table)) {
          this.loops.get(table)?.requestThrottledReload(`a payload of ${notification.table} too deeply nested to read`, 'unmappable_key');
        }
        return;
      case 'unknownVersion': {
        const tables = notification.table === null ? [...this.loops.keys()] : this.options.mapper.tablesOf(notification.table);
        this.options.logger.warn({ version: notification.version, table: notification.table }, 'a payload of an unknown format version; reloading what it may affect');
        const reason = `a payload of unknown format version ${payloadExcerpt(JSON.stringify(notification.version) ?? 'undefined')}`;
        for (const table of tables) this.loops.get(table)?.requestThrottledReload(reason, 'unknown_payload_version');
        return;
      }
      case 'barrier':
        this.barriers.arrive(notification.payload.id);
        for (const loop of this.loops.values()) loop.addBarrier(notification.payload.id);
        return;
      case 'change':
        for (const table of this.options.mapper.tablesOf(notification.payload.t)) this.loops.get(table)?.addChange(notification.payload);
        // Queued first: a cut this change proves must find everything before it in the queues.
        if (sender !== undefined) this.options.snapshots.changeDelivered?.(notification.payload, sender);
        return;
    }
  }

  /** Takes one change of the logical change source, committed at `commitLsn`. */
  pushChange(payload: ChangePayload, commitLsn: bigint): void {
    this.options.events.emit('notificationReceived', { kind: 'change' });
    for (const table of this.options.mapper.tablesOf(payload.t)) this.loops.get(table)?.addChange(payload, commitLsn);
  }

  /**
   * Reloads `tables` like a reload a notification asks for (throttled by
   * `minReloadIntervalMs`): for a change whose sender could not be checked.
   */
  requestNotifiedReload(tables: readonly string[], reason: string, kind: ReloadKind): void {
    for (const table of tables) this.loops.get(table)?.requestThrottledReload(reason, kind);
  }

  /** Reloads `tables` (every table when `null`) in their next step; `kind` is the reason's class for metrics. */
  requestReload(tables: readonly string[] | null, reason: string, kind: ReloadKind): void {
    for (const table of tables ?? this.loops.keys()) this.loops.get(table)?.requestReload(reason, kind);
  }

  /** Finishes every table's step in flight and stops; queued work is dropped (the next start reloads everything). */
  async stop(): Promise<void> {
    await Promise.all([...this.loops.values()].map((loop) => loop.stop()));
    this.barriers.clear();
  }

  private reportError(error: unknown, during: string): void {
    this.options.logger.error({ err: error }, `failed ${during}; will retry`);
    if (this.options.events.listenerCount('error') > 0) this.options.events.emit('error', { error, during, source: errorSource(error) });
  }
}
