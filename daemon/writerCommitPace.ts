import { performance } from 'node:perf_hooks';

/** Writers count as active while their changes arrive at least this often, the last one this recently (ms). */
const ACTIVE_GAP_MS = 5;
/** Bounds of the grace a cut gives the writers before it sends its own tick (ms). */
const MIN_GRACE_MS = 0.5;
const MAX_GRACE_MS = ACTIVE_GAP_MS;
/** Weight of the newest gap in the moving average. */
const SMOOTHING = 0.2;

/**
 * How often trusted writers' change notifications arrive, for the trigger
 * mode's cut: while they arrive every few milliseconds, one committed after
 * a step's snapshot proves its cut before a tick could (the tick queues on
 * the notify lock behind those very commits), so the step waits a short
 * grace for it and sends its tick only if none came. Without that, each step
 * sent a tick that nobody waited for, and under write load several were
 * queued on the lock at once, slowing the writers.
 */
export class WriterCommitPace {
  private lastAt = -Infinity;
  /** Moving average of the gaps between changes, each capped (a pause after a burst counts as a long gap, not forever). */
  private averageGapMs = Infinity;

  /** A trusted writer's change arrived (at `now`, `performance.now()` ms). */
  committed(now = performance.now()): void {
    const gap = Math.min(now - this.lastAt, 10 * ACTIVE_GAP_MS);
    this.averageGapMs = Number.isFinite(this.averageGapMs) ? this.averageGapMs + SMOOTHING * (gap - this.averageGapMs) : gap;
    this.lastAt = now;
  }

  /** Whether a writer's commit is likely to prove the next cut soon: they arrive every few ms, the last one just now. */
  active(now = performance.now()): boolean {
    return now - this.lastAt < ACTIVE_GAP_MS && this.averageGapMs < ACTIVE_GAP_MS;
  }

  /** How long a cut waits for a writer's commit before it sends its tick: twice the recent gap, from 0.5 to 5 ms. */
  graceMs(): number {
    return Math.min(MAX_GRACE_MS, Math.max(MIN_GRACE_MS, 2 * this.averageGapMs));
  }
}
