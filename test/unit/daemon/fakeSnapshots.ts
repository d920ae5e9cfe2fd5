import type { StepSnapshot, StepSnapshotSource } from '../../../daemon/stepSnapshot.ts';

/** Snapshots in which the transactions below `visibleBelow` are visible; counts the snapshots opened. */
export class FakeSnapshots implements StepSnapshotSource {
  visibleBelow = 2n ** 63n;
  opened = 0;
  /** Snapshots still to refuse (Postgres down, the tick lost). */
  refuse = 0;
  /** Runs after a snapshot is fixed, before the step cuts its batch: where a notification "arrives with the tick". */
  onOpen: (() => void) | null = null;
  /** The statement timeouts steps set on their snapshots, in order. */
  readonly limits: number[] = [];
  /** While set, an opened snapshot's cut is not proven until it resolves (a tick on its way). */
  proof: Promise<void> | null = null;

  async open(): Promise<StepSnapshot> {
    if (this.refuse > 0) {
      this.refuse--;
      throw new Error('the tick did not come back');
    }
    const below = this.visibleBelow;
    this.opened++;
    await this.proof;
    this.onOpen?.();
    return { isVisible: (xid) => xid < below, session: null, text: '', tickMs: 0, ticks: 1, provenBy: 'tick', limitStatements: async (ms) => {
        this.limits.push(ms);
      }, close: async () => {} };
  }

  acceptTick(): boolean {
    return false;
  }

  listenerReset(): void {}
}
