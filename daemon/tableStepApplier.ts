import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/core/logger.ts';
import type { BarrierTracker } from './barrierTracker.ts';
import type { ChangeBatch, TableChanges } from './changeBatch.ts';
import type { DaemonEvents, ReloadKind, TableBatchResult } from './daemonEvents.ts';
import type { RefreshReadAhead } from './refreshReadAhead.ts';
import type { ReloadThrottle } from './reloadThrottle.ts';
import type { StepSnapshot } from './stepSnapshot.ts';
import type { SyncedTable } from './syncedTable.ts';

/** Options of a {@link TableStepApplier}: its {@link TableStepLoop}'s, and the loop's throttle and reports. */
export interface TableStepApplierOptions {
  readonly table: SyncedTable;
  readonly barriers: BarrierTracker;
  /** Statement timeout of a refresh step's queries (resolve and refresh), in ms; 0: none. */
  readonly refreshTimeoutMs: number;
  /** Statement timeout of each query of a reload step (each cursor fetch of a load), in ms; 0: none. */
  readonly loadTimeoutMs: number;
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
  /** The loop's reload throttle: whether this table's reload is deferred, and the barriers that wait for it. */
  readonly throttle: ReloadThrottle;
  /** Queues a reload of the table for a later step (after a failed one), for `reasons` (their classes, for metrics: `kinds`). */
  readonly requestReload: (reasons: Iterable<string>, kinds: Iterable<ReloadKind>) => void;
  /** Logs a failure (and emits `error`); the loop knows whether it is stopping. */
  readonly reportError: (error: unknown, during: string) => void;
}

/**
 * The second half of one table's step (after the cut, in the step's
 * snapshot): reloads the table or refreshes the keys of the cut batch, then
 * reports the step's barriers as reached (or the table as failed) and emits
 * `batchApplied`. Across steps it keeps what a failed or held step did not
 * make visible: the arrival of its changes (for the lag) and its barriers,
 * reached only with a later successful step. Its {@link TableStepLoop}
 * decides when a step runs and in which order.
 */
export class TableStepApplier {
  private readonly name: string;
  private loadedOnce = false;
  /** Arrival of the oldest change a failed or held step did not make visible; the next successful step does. */
  private carriedSinceAt: number | null = null;
  /** Trigger times of the changes a failed or held step did not make visible: reported with the step that does. */
  private carriedChangeTimes: number[] = [];
  /** Barriers of failed steps: reached only with a later successful one. */
  private deferredBarriers: string[] = [];

  constructor(private readonly options: TableStepApplierOptions) {
    this.name = options.table.name;
  }

  /** Whether the table was loaded once: readers see a complete load of it, even while it is reloaded. */
  get wasLoaded(): boolean {
    return this.loadedOnce;
  }

  /** The table was resumed from what Redis holds, not loaded: it counts as loaded. */
  markResumed(): void {
    this.loadedOnce = true;
  }

  /** Arrival of the oldest change a failed or held step did not make visible (`performance.now()` ms), or `null`. */
  get carriedSince(): number | null {
    return this.carriedSinceAt;
  }

  /**
   * Applies a cut batch in `snapshot` and reports its barriers; returns
   * whether it failed (the table is then reloaded in a later step).
   * `throttleMark`: the reload throttle's {@link ReloadThrottle.requestMark}
   * when the step was taken, before `snapshot` was opened.
   */
  async apply(batch: ChangeBatch, snapshot: StepSnapshot, throttleMark: number, readAhead: RefreshReadAhead | null = null): Promise<boolean> {
    const { reached, held } = this.holdIfDeferred(batch, throttleMark);
    return this.applyBatch(batch, reached, held, snapshot, readAhead);
  }

  /**
   * Throttle bookkeeping for a cut batch; returns the barriers this step
   * reaches if it succeeds. A reload in this step covers a deferred one
   * (barriers that waited for it are reached with this step). While this
   * table's reload is deferred, it stays at its last step: its keys are
   * dropped (refreshing part of what the deferred reload stands for could
   * publish part of a transaction; that reload, in a later snapshot, holds
   * them), and so are its barriers, until the reload is applied.
   */
  private holdIfDeferred(batch: ChangeBatch, throttleMark: number): { reached: string[]; held: boolean } {
    const { throttle } = this.options;
    const changes = batch.entries().find(([name]) => name === this.name)?.[1];
    const starting = changes?.needsReload === true || !this.options.table.isLoaded;
    const released = starting ? throttle.reloadStarted(this.name, throttleMark) : [];
    // A reload asked for after this one was admitted stays deferred (reloadStarted), but does not hold this one.
    const held = !starting && throttle.deferred().has(this.name);
    if (held) {
      this.carry(batch);
      batch.forget(this.name);
    }
    const waiting = batch.barriers.filter((id) => throttle.holdBarrier(id));
    return { reached: [...batch.barriers.filter((id) => !waiting.includes(id)), ...released], held };
  }

  /**
   * Applies a batch in `snapshot`; returns whether it failed. `held`: the
   * batch's changes were carried for a deferred reload, so this step makes
   * none visible.
   */
  private async applyBatch(batch: ChangeBatch, reachedBarriers: readonly string[], held: boolean, snapshot: StepSnapshot, readAhead: RefreshReadAhead | null): Promise<boolean> {
    const results: TableBatchResult[] = [];
    const changes = batch.entries().find(([name]) => name === this.name)?.[1];
    const reload = changes?.needsReload ?? false;
    let failure: unknown = null;
    if (changes !== undefined) {
      try {
        await snapshot.limitStatements(reload ? this.options.loadTimeoutMs : this.options.refreshTimeoutMs);
        if (reload) {
          const reasons = [...changes.reloadReasons];
          const kinds: ReloadKind[] = [...changes.reloadKinds];
          const { records, ms } = await this.options.table.reload(reasons, snapshot);
          results.push({ table: this.name, action: 'reload', keys: 0, readAheadKeys: 0, expired: 0, loaded: records });
          this.reportLoaded(records, ms, reasons, kinds);
        } else {
          const counts = await this.options.table.refresh(changes, snapshot, readAhead);
          results.push({ table: this.name, action: 'refresh', ...counts });
        }
      } catch (error) {
        failure = error;
        this.options.reportError(error, `${reload ? 'reloading' : 'refreshing'} table ${this.name}`);
      }
    }
    const barriers = [...this.deferredBarriers, ...reachedBarriers];
    this.deferredBarriers = [];
    // The changes this step made visible: none when it failed or was held (their lag stays carried).
    let changeTimes: readonly number[] = [];
    if (failure !== null) {
      if (!held) this.carry(batch);
      this.requestRetry(reload ? changes : undefined);
      this.deferredBarriers = barriers;
      await this.options.barriers.failed(this.name, failure instanceof Error ? failure.message : String(failure));
    } else {
      if (!held) changeTimes = this.takeCarried(batch.changeTimes);
      await this.options.barriers.reached(this.name, barriers);
    }
    this.options.events.emit('batchApplied', {
      notifications: batch.notifications,
      receivedKeys: batch.receivedKeys,
      tables: results,
      barriers: failure !== null ? 0 : barriers.length,
      ms: performance.now() - batch.startedAt,
      tickMs: snapshot.tickMs,
      ticks: snapshot.ticks,
      cutProvenBy: snapshot.provenBy,
      oldestChangeAt: oldestOf(changeTimes),
      changeTimes,
    });
    return failure !== null;
  }

  /**
   * Queues the reload that recovers from a failed step, as `failure`. A
   * failed reload's retry is still that reload: it keeps its reasons and
   * kinds too, so a `storage_lost` reload that needed a retry is counted (and
   * alerted on) as `storage_lost` when it completes, not as `failure` only.
   */
  private requestRetry(failedReload: TableChanges | undefined): void {
    const reasons = ['recovering from a failed refresh or reload', ...(failedReload?.reloadReasons ?? [])];
    this.options.requestReload(reasons, ['failure', ...(failedReload?.reloadKinds ?? [])]);
  }

  private carry(batch: ChangeBatch): void {
    const arrivedAt = batch.oldestChangeArrivedAt;
    if (arrivedAt !== null) this.carriedSinceAt = Math.min(this.carriedSinceAt ?? arrivedAt, arrivedAt);
    for (const time of batch.changeTimes) this.carriedChangeTimes.push(time);
  }

  /** A step made everything visible: the carried changes' lag ends with `changeTimes`'. Returns them all. */
  private takeCarried(changeTimes: readonly number[]): readonly number[] {
    this.carriedSinceAt = null;
    if (this.carriedChangeTimes.length === 0) return changeTimes;
    const all = [...this.carriedChangeTimes, ...changeTimes];
    this.carriedChangeTimes = [];
    return all;
  }

  private reportLoaded(records: number, ms: number, reasons: readonly string[], kinds: readonly ReloadKind[]): void {
    const first = !this.loadedOnce;
    this.loadedOnce = true;
    const rowsPerSecond = ms > 0 ? Math.round((records * 1000) / ms) : null;
    this.options.logger.info({ table: this.name, records, ms: Math.round(ms), rowsPerSecond, reasons }, first ? 'table loaded' : 'table reloaded');
    this.options.events.emit(first ? 'loaded' : 'reloaded', { table: this.name, records, ms, reasons, kinds });
  }
}

/** The earliest of `times`, or `null` when there is none (a loop: a step may carry 100,000 of them, too many to spread). */
function oldestOf(times: readonly number[]): number | null {
  let oldest: number | null = null;
  for (const time of times) if (oldest === null || time < oldest) oldest = time;
  return oldest;
}
