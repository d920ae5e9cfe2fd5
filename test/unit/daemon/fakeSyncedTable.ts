import type { TableChanges } from '../../../daemon/changeBatch.ts';
import type { TableRefreshCounts } from '../../../daemon/tableSync.ts';
import type { SyncedTable } from '../../../daemon/changePipeline.ts';
import type { Deferred } from '../core/deferred.ts';

/** What the pipeline asked of a {@link FakeSyncedTable}: a reload, or a refresh of these primary keys. */
export type TableStep = { kind: 'reload' } | { kind: 'refresh'; keys: unknown[] };

/**
 * A cached table that records what the pipeline asks of it. A test may hold
 * its steps (a slow query), fail the next one or every one (Postgres gone, a
 * dropped column, a statement timeout), or make Redis lose its data.
 */
export class FakeSyncedTable implements SyncedTable {
  readonly steps: TableStep[] = [];
  isLoaded = false;
  /** What `storageIntact()` answers. */
  intact = true;
  /** While set, every step waits for it. */
  hold: Deferred | null = null;
  /** Fails the next step (once). */
  failNext = false;
  /** While set, every step fails with this message. */
  failing: string | null = null;

  /** @param onStep Also told every step, as it starts (a test's log shared with barrier marks). */
  constructor(
    readonly name: string,
    private readonly onStep?: (step: TableStep) => void,
  ) {}

  async reload(): Promise<{ records: number; ms: number }> {
    await this.step({ kind: 'reload' });
    this.isLoaded = true;
    return { records: 1, ms: 1 };
  }

  async refresh(changes: TableChanges): Promise<TableRefreshCounts> {
    const keys = [...(changes.keysByIndex.get('primary_key')?.keys() ?? [])];
    await this.step({ kind: 'refresh', keys });
    return { keys: keys.length, readAheadKeys: 0, expired: 0, loaded: keys.length };
  }

  async storageIntact(): Promise<boolean> {
    return this.intact;
  }

  /** Lets go of a held step and stops failing: a test that failed must not leave a step held (the pipeline's stop would wait for it). */
  release(): void {
    this.failing = null;
    this.hold?.resolve();
  }

  private async step(step: TableStep): Promise<void> {
    this.steps.push(step);
    this.onStep?.(step);
    if (this.hold) await this.hold.promise;
    const failure = this.failNext ? 'Postgres went away' : this.failing;
    this.failNext = false;
    if (failure !== null) {
      this.isLoaded = false;
      throw new Error(failure);
    }
  }
}
