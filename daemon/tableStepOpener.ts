import { performance } from 'node:perf_hooks';
import type { ChangeQueue, StepStart } from './changeQueue.ts';
import type { ReloadThrottle } from './reloadThrottle.ts';
import type { RefreshReadAhead } from './refreshReadAhead.ts';
import type { StepSnapshot, StepSnapshotSource, TakenSnapshot } from './stepSnapshot.ts';
import type { WakeSignal } from './wakeSignal.ts';

/** A step whose snapshot is open and whose tick came back: it cuts and applies next. */
export interface OpenedStep {
  readonly start: StepStart;
  readonly snapshot: StepSnapshot;
  /** The change source's position once S was open (logical capture), or `null`. */
  readonly cutAt: bigint | null;
  /** The reload throttle's request count when the step was taken, before S was opened: the requests up to it are in S. */
  readonly throttleMark: number;
  /** The records read in S while the cut was proven, or `null`. */
  readonly readAhead: RefreshReadAhead | null;
}

/** Options of a {@link TableStepOpener}: its {@link TableStepLoop}'s queue, wake-ups and reports. */
export interface TableStepOpenerOptions {
  readonly queue: ChangeQueue;
  readonly snapshots: StepSnapshotSource;
  /** The loop's reload throttle: a step notes its {@link ReloadThrottle.requestMark} before opening S. */
  readonly throttle: ReloadThrottle;
  /** Wakes the opener when work arrives (and when the step it opens ahead of ends). */
  readonly work: WakeSignal;
  readonly batchWindowMs: number;
  readonly maxBatchKeys: number;
  /** Where the change source is now (logical capture: `CapturePositions.current()`), or `null` (NOTIFY has no positions). */
  readonly sourcePosition: () => bigint | null;
  /**
   * Once a step's S is fixed, before its cut is proven: starts reading in S
   * what the step will certainly refresh (`null`: nothing, e.g. the step
   * reloads). Must not throw.
   */
  readonly readAhead: (start: StepStart, taken: TakenSnapshot) => RefreshReadAhead | null;
  /** Whether the loop is stopping: a window or a wait for work ends at once. */
  readonly isStopping: () => boolean;
  /** Logs a failure (and emits `error`); the loop knows whether it is stopping. */
  readonly reportError: (error: unknown, during: string) => void;
}

/**
 * The first half of one table's step, before the cut: lets young work
 * gather for the batch window, takes the barriers and reload requests
 * received so far, and opens the step's snapshot S (whose tick proves every
 * notification of a transaction visible in S has arrived). It opens the next
 * step ahead while one applies, gives an abandoned step's start back to the
 * queue, and closes snapshots off the path of the next step. Its
 * {@link TableStepLoop} decides when a step is opened, and cuts and orders
 * the opened steps.
 */
export class TableStepOpener {
  /** Steps taken from the queue whose snapshot is being opened, or open and waiting for the step in flight. */
  private readonly taken = new Set<StepStart>();
  private closingSnapshots: Promise<void> = Promise.resolve();
  /** When the last step took its start (`performance.now()` ms): the next one's window starts no earlier. */
  private lastStepStartAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: TableStepOpenerOptions) {}

  /** The starts of the steps taken from the queue and not cut yet (their changes are pending, for the lag and pending reloads). */
  get opening(): ReadonlySet<StepStart> {
    return this.taken;
  }

  /**
   * Takes the barriers and reload requests received so far, then opens the
   * step's snapshot S; `'failed'` when S could not be opened (reported; what
   * was taken is given back).
   */
  async open(): Promise<OpenedStep | 'failed'> {
    const { queue, throttle } = this.options;
    // Taken before S is opened: everything committed before these barriers and requests is visible in S.
    const start = queue.takeStart();
    const throttleMark = throttle.requestMark;
    this.lastStepStartAt = performance.now();
    this.taken.add(start);
    let snapshot: StepSnapshot;
    let readAhead: RefreshReadAhead | null = null;
    try {
      snapshot = await this.options.snapshots.open((taken) => (readAhead = this.options.readAhead(start, taken)));
    } catch (error) {
      this.taken.delete(start);
      queue.giveBack(start);
      this.options.reportError(error, 'opening a snapshot for the next step');
      return 'failed';
    }
    // Every change committed before it is queued now: what this step does not apply stays queued.
    return { start, snapshot, cutAt: this.options.sourcePosition(), throttleMark, readAhead };
  }

  /**
   * While step `current` applies a refresh, opens the next step's snapshot
   * and waits for its tick as soon as there is work, so that the tick's
   * round trip (and the wait for the step in flight) is off the path of
   * the next change. The next step cuts and applies only after `current`
   * has published (steps publish in order, and a step after a failed one
   * is abandoned): its snapshot, opened after `current`'s, is at least as
   * new. Resolves to `null` when no work arrived before `current` ended.
   */
  async openAhead(current: Promise<unknown>): Promise<OpenedStep | 'failed' | null> {
    const { queue, work, isStopping } = this.options;
    let ended = false;
    const end = () => {
      ended = true;
      work.wake();
    };
    current.then(end, end);
    while (!queue.hasWork) {
      if (ended || isStopping()) return null;
      await work.next();
    }
    await this.waitForWindow();
    if (isStopping()) return null;
    return this.open();
  }

  /**
   * Lets young work gather more notifications, unless enough keys are
   * queued or the loop is stopping. The window starts when the oldest queued
   * item arrived, but not before the last step took its start: under
   * continuous changes, steps start at most once per window (the changes a
   * step left queued count as waiting since that step's start, which would
   * otherwise make every window look over), and an idle table's first change
   * still waits at most one window.
   */
  async waitForWindow(): Promise<void> {
    const { queue, batchWindowMs, maxBatchKeys, isStopping } = this.options;
    for (;;) {
      const from = Math.max(queue.queuedSince ?? 0, this.lastStepStartAt);
      const left = from + batchWindowMs - performance.now();
      if (left <= 0 || isStopping() || queue.queuedKeys >= maxBatchKeys) return;
      await this.options.work.nextOrTimeout(left);
    }
  }

  /** Step `opened` cuts now: it is no longer waiting (its snapshot is closed with {@link closeSnapshot} once it ends). */
  cutting(opened: OpenedStep): void {
    this.taken.delete(opened.start);
  }

  /** Gives an opened step's barriers and reload requests back to the queue (it never cut) and closes its snapshot. */
  abandon(opened: OpenedStep): void {
    this.taken.delete(opened.start);
    this.options.queue.giveBack(opened.start);
    this.closeSnapshot(opened.snapshot);
  }

  /** Ending the read-only transaction is off the path to the next step (close never rejects). */
  closeSnapshot(snapshot: StepSnapshot): void {
    const before = this.closingSnapshots;
    this.closingSnapshots = Promise.all([before, snapshot.close()]).then(() => undefined);
  }

  /** Resolves once every snapshot closed so far has ended. */
  async closed(): Promise<void> {
    await this.closingSnapshots;
  }
}
