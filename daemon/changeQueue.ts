import { performance } from 'node:perf_hooks';
import type { ChangePayload } from '../sql-triggers/payload.ts';
import { ChangeBatch, type TableChanges } from './changeBatch.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { ReloadKind } from './daemonEvents.ts';
import type { StepSnapshot } from './stepSnapshot.ts';

/** A change notification waiting for the first step whose snapshot holds its transaction. */
interface PendingChange {
  readonly xid: bigint;
  readonly payload: ChangePayload;
  /** Keys it carries (what the queue bound counts). */
  readonly keys: number;
  /** When it arrived (`performance.now()` ms): the lag gauge counts from here. */
  readonly arrivedAt: number;
  /** Where its commit is in the WAL (logical capture), or `null` (NOTIFY). */
  readonly commitLsn: bigint | null;
}

/** What a step takes from the queue before it opens its snapshot. */
export interface StepStart {
  /** Barriers received so far: everything committed before them is visible in any snapshot opened from now on. */
  readonly barriers: readonly string[];
  /** Reloads requested so far, per table (no keys). */
  readonly reloads: ChangeBatch;
  /** When the step's oldest queued item arrived (`performance.now()` ms). */
  readonly startedAt: number;
}

/**
 * What the pipeline has received and not applied yet: change notifications
 * by transaction id, in arrival (commit) order, barriers, and reload
 * requests. A step takes barriers and reloads before it opens its snapshot
 * ({@link takeStart}), then {@link cut}s the changes that snapshot holds;
 * the rest stay for a later step.
 *
 * Changes are mapped to keys only when a step cuts them: until then the
 * transaction a key came from matters, and mapping is cheap.
 */
export class ChangeQueue {
  private changes: PendingChange[] = [];
  private changeKeys = 0;
  /** Keys queued per source table (what the per-table flood bound counts). */
  private readonly sourceKeys = new Map<string, number>();
  private barriers: string[] = [];
  private reloads = new ChangeBatch();
  /** When the oldest queued item arrived; `null` when nothing is queued. */
  private since: number | null = null;
  /** Trigger times of changes dropped by {@link dropChanges}, reported with the next step. */
  private droppedChangeTimes: number[] = [];
  /** When the oldest dropped change arrived (its reload, in the next step, makes it visible). */
  private droppedArrivedAt: number | null = null;
  /** The oldest commit position of the changes dropped since the last cut (their reload comes with a later step). */
  private droppedCommitLsn: bigint | null = null;

  /** Whether anything waits for a step. */
  get hasWork(): boolean {
    return this.changes.length > 0 || this.barriers.length > 0 || !this.reloads.isEmpty;
  }

  /** Keys the queued change notifications carry. */
  get queuedKeys(): number {
    return this.changeKeys;
  }

  /** When the oldest queued item arrived (`performance.now()` ms), or `null`. */
  get queuedSince(): number | null {
    return this.since;
  }

  /** The reloads requested and not yet taken by a step. */
  get requestedReloads(): ChangeBatch {
    return this.reloads;
  }

  /**
   * Where the oldest change not applied yet commits in the WAL, dropped ones
   * included (their reload has not run yet), or `null` when none (logical
   * capture: the table's position may not pass it).
   */
  get oldestCommitLsn(): bigint | null {
    let oldest = this.droppedCommitLsn;
    for (const change of this.changes) {
      if (change.commitLsn !== null && (oldest === null || change.commitLsn < oldest)) oldest = change.commitLsn;
    }
    return oldest;
  }

  /** Queues a change; `commitLsn`: where its transaction commits in the WAL (logical capture). */
  addChange(payload: ChangePayload, commitLsn: bigint | null = null): void {
    const keys = payload.op === 'T' || payload.op === 'X' ? 1 : payload.k.length + (payload.ok?.length ?? 0);
    this.since ??= performance.now();
    this.changes.push({ xid: BigInt(payload.xid), payload, keys, arrivedAt: performance.now(), commitLsn });
    this.changeKeys += keys;
    this.sourceKeys.set(payload.t, (this.sourceKeys.get(payload.t) ?? 0) + keys);
  }

  /**
   * When the oldest change not yet handed to a step arrived
   * (`performance.now()` ms), dropped ones included; `null` when there is none.
   */
  get oldestChangeArrivedAt(): number | null {
    const queued = this.changes[0]?.arrivedAt ?? null;
    if (queued === null) return this.droppedArrivedAt;
    return this.droppedArrivedAt === null ? queued : Math.min(queued, this.droppedArrivedAt);
  }

  /** Keys queued from source table `source`. */
  keysFrom(source: string): number {
    return this.sourceKeys.get(source) ?? 0;
  }

  /** Keys queued per source table. */
  keysPerSource(): ReadonlyMap<string, number> {
    return this.sourceKeys;
  }

  /**
   * Drops the queued changes of source table `source` (the caller reloads
   * the tables it feeds instead; those changes have committed, so a later
   * snapshot holds them).
   */
  dropChangesFrom(source: string): void {
    const kept: PendingChange[] = [];
    for (const change of this.changes) {
      if (change.payload.t === source) this.drop(change);
      else kept.push(change);
    }
    this.keep(kept);
  }

  addBarrier(id: string): void {
    this.since ??= performance.now();
    this.barriers.push(id);
  }

  /** Asks the next step to reload `table`, for `reasons` (their classes, for metrics: `kinds`). */
  requestReload(table: string, reasons: Iterable<string>, kinds: Iterable<ReloadKind>): void {
    this.since ??= performance.now();
    this.reloads.table(table).requestReloads(reasons, kinds);
  }

  /** Whether a reload of `table` is queued for the next step (no step took it yet). */
  reloadQueued(table: string): boolean {
    return this.reloads.entries().some(([name, changes]) => name === table && changes.needsReload);
  }

  /**
   * Drops every queued change (the caller requests a reload of every table
   * instead). Every queued change has committed, so the next step's snapshot,
   * and its reload, hold it. Returns how many keys were dropped.
   */
  dropChanges(): number {
    const dropped = this.changeKeys;
    for (const change of this.changes) this.drop(change);
    this.keep([]);
    return dropped;
  }

  private drop(change: PendingChange): void {
    if (change.commitLsn !== null && (this.droppedCommitLsn === null || change.commitLsn < this.droppedCommitLsn)) this.droppedCommitLsn = change.commitLsn;
    this.droppedChangeTimes.push(change.payload.ts);
    this.droppedArrivedAt = Math.min(this.droppedArrivedAt ?? change.arrivedAt, change.arrivedAt);
  }

  private keep(changes: PendingChange[]): void {
    this.changes = changes;
    this.changeKeys = 0;
    this.sourceKeys.clear();
    for (const change of changes) {
      this.changeKeys += change.keys;
      this.sourceKeys.set(change.payload.t, (this.sourceKeys.get(change.payload.t) ?? 0) + change.keys);
    }
  }

  /** Takes the barriers and reload requests; call before opening the step's snapshot. */
  takeStart(): StepStart {
    const start: StepStart = { barriers: this.barriers, reloads: this.reloads, startedAt: this.since ?? performance.now() };
    this.barriers = [];
    this.reloads = new ChangeBatch();
    this.since = null;
    return start;
  }

  /** Puts back what {@link takeStart} took, when the step could not open its snapshot. */
  giveBack(start: StepStart): void {
    this.barriers.unshift(...start.barriers);
    start.reloads.addReloadsOf(this.reloads);
    this.reloads = start.reloads;
    this.since = Math.min(this.since ?? start.startedAt, start.startedAt);
  }

  /**
   * What a {@link cut} in a snapshot where `isVisible` holds would ask of
   * table `table` from the changes queued now, without cutting them: the
   * keys a step can read while its cut is proven (the cut may add changes
   * that arrive meanwhile). `null` when they ask for a reload of the table,
   * or name no key.
   */
  preview(isVisible: (xid: bigint) => boolean, mapper: ChangeMapper, table: string): TableChanges | null {
    const preview = new ChangeBatch();
    let reload = false;
    for (const change of this.changes) {
      if (!isVisible(change.xid)) continue;
      mapper.map(change.payload, preview, () => (reload = true), table);
      if (reload) return null;
    }
    const changes = preview.entries().find(([name]) => name === table)?.[1];
    return changes === undefined || changes.keysByIndex.size === 0 ? null : changes;
  }

  /**
   * The step's batch: the reloads taken at its start, then every queued
   * change whose transaction is visible in `snapshot`, mapped (a reloaded
   * table ignores its keys: the reload reads the same snapshot), and the
   * barriers taken at its start. The other changes stay queued. A reload a
   * change asks for (coarse, truncate, unmappable keys) is added when
   * `admitReload` lets it run now (else it was deferred by the caller).
   * With `onlyTable` (a table's own step loop), changes are mapped into that
   * table only.
   */
  cut(
    start: StepStart,
    snapshot: StepSnapshot,
    mapper: ChangeMapper,
    admitReload: (table: string, reason: string, kind: ReloadKind) => boolean,
    onlyTable?: string,
  ): ChangeBatch {
    const batch = new ChangeBatch(start.startedAt);
    batch.countDroppedChanges(this.droppedChangeTimes, this.droppedArrivedAt);
    this.droppedChangeTimes = [];
    this.droppedArrivedAt = null;
    this.droppedCommitLsn = null;
    batch.addReloadsOf(start.reloads);
    const kept: PendingChange[] = [];
    for (const change of this.changes) {
      if (!snapshot.isVisible(change.xid)) {
        kept.push(change);
        continue;
      }
      batch.countNotification(change.payload.ts, change.arrivedAt);
      mapper.map(
        change.payload,
        batch,
        (table, reason, kind) => {
          // Visible in this step's snapshot: a reload this step already does covers it, without asking the throttle again.
          if (batch.table(table).needsReload || admitReload(table, reason, kind)) batch.table(table).requestReload(reason, kind);
        },
        onlyTable,
      );
    }
    if (kept.length !== this.changes.length) this.keep(kept);
    // Changes left for a later step have waited since this step's start.
    if (kept.length > 0) this.since = Math.min(this.since ?? start.startedAt, start.startedAt);
    batch.addBarriers(start.barriers);
    return batch;
  }
}
