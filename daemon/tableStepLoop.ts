import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/core/logger.ts';
import type { ChangePayload } from '../sql-triggers/payload.ts';
import type { ChangeBatch } from './changeBatch.ts';
import type { ChangeMapper } from './changeMapper.ts';
import { ChangeQueue, type StepStart } from './changeQueue.ts';
import type { BarrierTracker } from './barrierTracker.ts';
import type { DaemonEvents, ReloadKind } from './daemonEvents.ts';
import { errorSource } from './errorSource.ts';
import { PositionSaves } from './positionSaves.ts';
import { ReloadThrottle } from './reloadThrottle.ts';
import { retryDelayMs } from '../lib/core/retryBackoff.ts';
import type { RefreshReadAhead } from './refreshReadAhead.ts';
import type { StepSnapshotSource, TakenSnapshot } from './stepSnapshot.ts';
import type { SyncedTable } from './syncedTable.ts';
import { TableStepApplier } from './tableStepApplier.ts';
import { TableStepOpener, type OpenedStep } from './tableStepOpener.ts';
import { WakeSignal } from './wakeSignal.ts';

/**
 * Where a change source with positions (logical capture: WAL positions) is,
 * and where each table has got to: a table's position moves only after a
 * step made everything before it visible in Redis.
 */
export interface CapturePositions {
  /** Where the source is now: every change committed before it has been queued. */
  current(): bigint;
  /** Table `table` holds every change committed before `position` (saved with its generation, then acknowledged). */
  reached(table: string, position: bigint): Promise<void>;
}

/** Options of a {@link TableStepLoop}; the pipeline's, for one table. */
export interface TableStepLoopOptions {
  readonly table: SyncedTable;
  readonly mapper: ChangeMapper;
  readonly snapshots: StepSnapshotSource;
  readonly barriers: BarrierTracker;
  readonly batchWindowMs: number;
  readonly maxBatchKeys: number;
  /** Keys queued for this table beyond which they are replaced by one reload of it. */
  readonly maxQueuedKeys: number;
  /** Keys queued from one source beyond which they are replaced by one (throttled) reload: `key_flood`. */
  readonly maxQueuedKeysPerTable: number;
  readonly minReloadIntervalMs: number;
  readonly storageCheckIntervalMs: number;
  /** Statement timeout of a refresh step's queries (resolve and refresh), in ms; 0: none. */
  readonly refreshTimeoutMs: number;
  /** Statement timeout of each query of a reload step (each cursor fetch of a load), in ms; 0: none. */
  readonly loadTimeoutMs: number;
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
  /** The change source's positions (logical capture); absent for NOTIFY, which has none. */
  readonly positions?: CapturePositions | undefined;
}

/**
 * One table's steps, independent of every other table's: its own cut of
 * the change notifications (a payload that feeds several tables is queued
 * in each of their loops), its own snapshot per step, its own failure
 * backoff and reload throttle. A table whose query is slow, failing or
 * timing out holds back only its own steps (issue #18).
 *
 * Each step:
 *
 * 1. takes the barriers and reload requests received so far;
 * 2. opens a snapshot S (a tick NOTIFY committed after S proves that every
 *    notification of a transaction visible in S has arrived) and bounds its
 *    statements (`refreshTimeoutMs` or `loadTimeoutMs`);
 * 3. cuts the queue: the changes whose transaction is visible in S, mapped
 *    for this table; the rest stay queued;
 * 4. reloads the table, or refreshes all its keys in one merge, all reads in S;
 * 5. reports the barriers of step 1 as reached by this table
 *    ({@link BarrierTracker}: marked once every table reached them).
 *
 * {@link TableStepOpener} does 1 and opens S, this loop does 3 and orders
 * the steps, {@link TableStepApplier} bounds S's statements (by what the
 * step does) and does 4 and 5.
 *
 * So after every step the table in Redis is its query's result in S, and
 * its snapshots only move forward.
 *
 * Steps overlap by one: while a step refreshes, the next one takes 1 and
 * 2 as soon as there is work, so that its tick is off the path of the
 * changes it applies. It does 3 to 5 only once the step before it has
 * published, and is abandoned (what it took goes back to the queue) when
 * that step failed; after a reload, the next step is opened only then, so
 * that no snapshot is held open through a long load.
 */
export class TableStepLoop {
  readonly name: string;
  private readonly queue = new ChangeQueue();
  /** The batch being applied. */
  private inFlight: ChangeBatch | null = null;
  private readonly positionSaves: PositionSaves;
  private readonly opener: TableStepOpener;
  private readonly applier: TableStepApplier;
  private readonly work = new WakeSignal();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private consecutiveFailures = 0;
  private lastStorageCheck = performance.now();
  private readonly throttle: ReloadThrottle;

  constructor(private readonly options: TableStepLoopOptions) {
    this.name = options.table.name;
    this.positionSaves = new PositionSaves(
      async (position) => this.options.positions?.reached(this.name, position),
      // Not fatal: the position is saved again after the next step; until then the slot keeps the WAL.
      (error) => this.reportError(error, `saving the capture position of table ${this.name}`),
    );
    this.throttle = new ReloadThrottle({
      minIntervalMs: options.minReloadIntervalMs,
      onDue: (table, reload, barriers) => {
        this.queue.requestReload(table, reload.reasons, reload.kinds);
        for (const id of barriers) this.queue.addBarrier(id);
        this.options.logger.info({ table, reasons: [...reload.reasons] }, 'reloading after the least interval between reloads');
        this.work.wake();
      },
      queued: (table) => this.queue.reloadQueued(table),
    });
    this.opener = new TableStepOpener({
      snapshots: options.snapshots,
      batchWindowMs: options.batchWindowMs,
      maxBatchKeys: options.maxBatchKeys,
      queue: this.queue,
      throttle: this.throttle,
      work: this.work,
      sourcePosition: () => this.options.positions?.current() ?? null,
      readAhead: (start, taken) => this.readAhead(start, taken),
      isStopping: () => this.stopping,
      reportError: (error, during) => this.reportError(error, during),
    });
    this.applier = new TableStepApplier({
      ...options,
      throttle: this.throttle,
      requestReload: (reasons, kinds) => {
        this.queue.requestReload(this.name, reasons, kinds);
        this.work.wake();
      },
      reportError: (error, during) => this.reportError(error, during),
    });
  }

  /** Whether the table was loaded once: readers see a complete load of it, even while it is reloaded. */
  get wasLoaded(): boolean {
    return this.applier.wasLoaded;
  }

  /** Whether the table was loaded and no reload waits after a failure. */
  get isCaughtUp(): boolean {
    return this.applier.wasLoaded && this.options.table.isLoaded;
  }

  /** Keys queued from the change notifications (not the step in flight). */
  get queuedKeys(): number {
    return this.queue.queuedKeys;
  }

  /**
   * When the oldest change this table has received and not made visible
   * yet arrived (`performance.now()` ms): queued, in the step running now,
   * or carried over from a step that failed or was held; `null` when every
   * change it received is visible.
   */
  get oldestPendingChangeAt(): number | null {
    let oldest: number | null = null;
    const opening = [...this.opener.opening].map((start) => start.reloads.oldestChangeArrivedAt);
    for (const at of [this.queue.oldestChangeArrivedAt, this.inFlight?.oldestChangeArrivedAt ?? null, this.applier.carriedSince, ...opening]) {
      if (at !== null && (oldest === null || at < oldest)) oldest = at;
    }
    return oldest;
  }

  /** The reload requested and not finished yet (queued, in flight, or deferred by the throttle), or `undefined`. */
  pendingReload(): { readonly reasons: string[]; readonly kinds: ReloadKind[] } | undefined {
    const reasons: string[] = [];
    const kinds: ReloadKind[] = [];
    const batches = [...(this.inFlight === null ? [] : [this.inFlight]), ...[...this.opener.opening].map((start) => start.reloads), this.queue.requestedReloads];
    for (const batch of batches) {
      for (const [, changes] of batch.entries()) {
        if (!changes.needsReload) continue;
        for (const reason of changes.reloadReasons) if (!reasons.includes(reason)) reasons.push(reason);
        for (const kind of changes.reloadKinds) if (!kinds.includes(kind)) kinds.push(kind);
      }
    }
    for (const reload of this.throttle.deferred().values()) {
      for (const reason of reload.reasons) if (!reasons.includes(reason)) reasons.push(`${reason} (deferred: at most one reload per interval)`);
      for (const kind of reload.kinds) if (!kinds.includes(kind)) kinds.push(kind);
    }
    return reasons.length === 0 && kinds.length === 0 ? undefined : { reasons, kinds };
  }

  /**
   * The table was resumed from what Redis holds (logical capture: its
   * position was saved with the live generation), not loaded: it counts as
   * loaded.
   */
  markResumed(): void {
    this.applier.markResumed();
  }

  /** Starts the loop (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Queues a change notification that feeds this table; `commitLsn`: where it commits in the WAL (logical capture). */
  addChange(payload: ChangePayload, commitLsn: bigint | null = null): void {
    this.queue.addChange(payload, commitLsn);
    if (payload.op !== 'T' && payload.op !== 'X') this.boundQueuedKeys(payload.t);
    this.collapseIfBehind();
    this.work.wake();
  }

  /** Queues a barrier: reached with the next step whose snapshot is opened after now. */
  addBarrier(id: string): void {
    this.queue.addBarrier(id);
    this.work.wake();
  }

  /** Reloads the table in the next step; `kind` is the reason's class for metrics. */
  requestReload(reason: string, kind: ReloadKind): void {
    this.queue.requestReload(this.name, [reason], [kind]);
    this.work.wake();
  }

  /**
   * A reload a notification asks for: queued now, unless the table was
   * reloaded less than `minReloadIntervalMs` ago; then it is deferred to the
   * end of the interval (never dropped), joined by every request meanwhile.
   */
  requestThrottledReload(reason: string, kind: ReloadKind): void {
    if (!this.throttle.admit(this.name, reason, kind)) return;
    this.requestReload(reason, kind);
  }

  /**
   * Finishes the steps whose snapshot is open (the one in flight, and the
   * one opened beside it or being opened, once its cut is proven) and stops;
   * queued work is dropped (the next start reloads everything, or resumes
   * from the table's saved position).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.throttle.close();
    this.work.wake();
    await this.loop;
    await this.opener.closed();
    await this.positionSaves.settled();
  }

  /** Past `maxQueuedKeysPerTable` keys from one source, its queued changes become one throttled reload (`key_flood`). */
  private boundQueuedKeys(sourceTable: string): void {
    const queued = this.queue.keysFrom(sourceTable);
    if (queued <= this.options.maxQueuedKeysPerTable) return;
    this.queue.dropChangesFrom(sourceTable);
    const bound = this.options.maxQueuedKeysPerTable;
    this.options.logger.warn({ table: this.name, source: sourceTable, queuedKeys: queued, bound }, 'too many changed keys queued for a table; reloading it instead');
    this.requestThrottledReload(`more than ${bound} changed keys were queued`, 'key_flood');
  }

  /** Past `maxQueuedKeys`, the queued changes become one reload: it costs the same as catching up and holds nothing per key. */
  private collapseIfBehind(): void {
    if (this.queue.queuedKeys <= this.options.maxQueuedKeys) return;
    const queued = this.queue.dropChanges();
    this.options.logger.warn({ table: this.name, queuedKeys: queued }, 'fell behind; replacing the queued changes by a reload');
    this.requestReload(`the daemon fell behind by ${queued} keys`, 'fell_behind');
  }

  private async run(): Promise<void> {
    // The next step, opened while the current one applies (see TableStepOpener.openAhead).
    let next: Promise<OpenedStep | 'failed' | null> | null = null;
    while (!this.stopping) {
      let opened: OpenedStep | 'failed' | null = null;
      if (next !== null) {
        opened = await next;
        next = null;
        // Between steps, when no merge changes the counts it reads.
        if (opened !== null) await this.checkStorage();
      }
      if (opened === null) {
        if (!this.queue.hasWork) await this.waitForWork(this.options.storageCheckIntervalMs);
        if (this.stopping) return;
        await this.checkStorage();
        if (!this.queue.hasWork) {
          this.recordIdlePosition();
          continue;
        }
        await this.opener.waitForWindow();
        if (this.stopping) return;
        opened = await this.opener.open();
      }
      const failed = opened === 'failed' || (await this.step(opened, (current) => (next = this.opener.openAhead(current))));
      if (failed && next !== null) {
        // A step after a failed one would publish its changes without the failed step's: it waits for the reload.
        const early = await next;
        next = null;
        if (early !== null && early !== 'failed') this.opener.abandon(early);
      }
      if (this.stopping) break;
      if (failed) await this.pauseAfterFailure();
      else this.consecutiveFailures = 0;
    }
    // A step whose snapshot was opened before the stop is finished too: its changes were received before it, and
    // its records may be read already (read ahead).
    const left = next === null ? null : await next;
    if (left !== null && left !== 'failed') await this.step(left, () => {});
  }

  /**
   * Starts reading, in a step's S before its cut is proven, the records of
   * the changes queued now whose transaction is in S: the cut holds them, so
   * the refresh need not read them after the proof. Nothing when the step
   * reloads the table (asked for at its start, or by one of those changes).
   */
  private readAhead(start: StepStart, taken: TakenSnapshot): RefreshReadAhead | null {
    const table = this.options.table;
    if (table.readAhead === undefined || !table.isLoaded) return null;
    if (start.reloads.entries().some(([name, changes]) => name === this.name && changes.needsReload)) return null;
    try {
      const changes = this.queue.preview(taken.isVisible, this.options.mapper, this.name);
      return changes === null ? null : table.readAhead(changes, taken.session);
    } catch (error) {
      // Only a head start: the refresh reads (and reports) the same keys itself.
      this.options.logger.debug({ table: this.name, err: error }, 'could not read ahead');
      return null;
    }
  }

  /** One step in its opened snapshot: cut, apply, barriers. Returns whether it failed. */
  private async step(opened: OpenedStep, preopen: (current: Promise<unknown>) => void): Promise<boolean> {
    const { start, snapshot, cutAt, throttleMark, readAhead } = opened;
    this.opener.cutting(opened);
    this.inFlight = start.reloads;
    try {
      if (!this.options.table.isLoaded && !start.reloads.table(this.name).needsReload) start.reloads.table(this.name).requestReload('its last reload failed', 'failure');
      const batch = this.queue.cut(start, snapshot, this.options.mapper, (table, reason, kind) => this.throttle.admit(table, reason, kind), this.name);
      this.inFlight = batch;
      const applying = this.applier.apply(batch, snapshot, throttleMark, readAhead);
      // A reload can take long: the next snapshot is opened after it, not held open meanwhile.
      if (batch.entries().find(([name]) => name === this.name)?.[1].needsReload !== true) preopen(applying);
      const failed = await applying;
      if (!failed && cutAt !== null) this.recordPosition(cutAt);
      return failed;
    } finally {
      this.inFlight = null;
      this.opener.closeSnapshot(snapshot);
    }
  }

  /**
   * After a successful step: the table holds every change committed before
   * the cut, except those still queued (or dropped for a reload not run
   * yet). A table waiting for a reload holds back its position.
   */
  private recordPosition(cutAt: bigint): void {
    if (this.pendingReload() !== undefined || !this.options.table.isLoaded) return;
    const queued = this.queue.oldestCommitLsn;
    this.reportPosition(queued !== null && queued < cutAt ? queued : cutAt);
  }

  /** An idle, caught-up table holds everything the source has delivered: its position follows the source's. */
  private recordIdlePosition(): void {
    const positions = this.options.positions;
    if (positions === undefined || this.queue.hasWork || this.pendingReload() !== undefined || !this.isCaughtUp) return;
    this.reportPosition(positions.current());
  }

  /** Saves a position off the path of the next step: its round trip to Redis overlaps the next step's snapshot and tick. */
  private reportPosition(position: bigint): void {
    this.positionSaves.report(position);
  }

  private waitForWork(timeoutMs: number): Promise<void> {
    return this.work.nextOrTimeout(timeoutMs);
  }

  private async pauseAfterFailure(): Promise<void> {
    const delayMs = retryDelayMs(this.consecutiveFailures);
    this.consecutiveFailures++;
    this.options.logger.warn({ table: this.name, retryInMs: delayMs }, 'retrying the failed table after a pause');
    const until = performance.now() + delayMs;
    while (!this.stopping && performance.now() < until) await this.waitForWork(until - performance.now());
  }

  /** Every `storageCheckIntervalMs`, asks whether Redis still holds the table's data; reloads it if not. */
  private async checkStorage(): Promise<void> {
    if (performance.now() - this.lastStorageCheck < this.options.storageCheckIntervalMs) return;
    this.lastStorageCheck = performance.now();
    if (!this.options.table.isLoaded) return;
    try {
      if (!(await this.options.table.storageIntact())) {
        this.options.logger.warn({ table: this.name }, 'Redis no longer holds the published data (flushed, restarted or taken over); reloading');
        this.requestReload('Redis lost the published data', 'storage_lost');
      }
    } catch (error) {
      this.reportError(error, `checking table ${this.name} in Redis`);
    }
  }

  private reportError(error: unknown, during: string): void {
    if (this.stopping) {
      // A stop abandons a running load on purpose (readers keep the data published before it).
      this.options.logger.info({ table: this.name, cause: error instanceof Error ? error.message : String(error) }, `stopped ${during}: the daemon is stopping`);
      return;
    }
    this.options.logger.error({ err: error, table: this.name }, `failed ${during}; will retry`);
    if (this.options.events.listenerCount('error') > 0) {
      this.options.events.emit('error', { error, during, source: errorSource(error), table: this.name });
    }
  }
}
