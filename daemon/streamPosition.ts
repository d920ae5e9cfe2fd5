import { TablecacheError } from '../lib/core/errors.ts';

/** A step waiting for the replication stream to reach `lsn`. */
interface PositionWaiter {
  readonly lsn: bigint;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Where the logical replication stream is, for step cuts: every transaction
 * whose commit record ends at or before {@link position} has been handed to
 * the pipeline (the stream delivers in commit order), and the steps waiting
 * for it to get further.
 */
export class StreamPosition {
  private streamed = 0n;
  private readonly waiters = new Set<PositionWaiter>();

  /** The stream got to `lsn`; returns whether that is further than before. Wakes the steps it passed. */
  reached(lsn: bigint): boolean {
    if (lsn <= this.streamed) return false;
    this.streamed = lsn;
    for (const waiter of [...this.waiters]) {
      if (waiter.lsn > lsn) continue;
      this.waiters.delete(waiter);
      waiter.resolve();
    }
    return true;
  }

  /** Whether the stream is at or past `lsn`. */
  passed(lsn: bigint): boolean {
    return this.streamed >= lsn;
  }

  /** Resolves once the stream reaches `lsn`; rejects on a {@link reset}. `cancel` stops waiting (the promise then never settles). */
  waitFor(lsn: bigint): { readonly reached: Promise<void>; cancel(): void } {
    let waiter: PositionWaiter | undefined;
    const reached = new Promise<void>((resolve, reject) => {
      waiter = { lsn, resolve, reject };
      this.waiters.add(waiter);
    });
    reached.catch(() => undefined);
    return { reached, cancel: () => this.waiters.delete(waiter!) };
  }

  /** The stream was lost or restored: every wait fails (its step is retried). */
  reset(): void {
    for (const waiter of this.waiters) {
      waiter.reject(new TablecacheError('TC_CONNECTION_FAILED', 'The replication stream was lost (or restored) while waiting for a snapshot to be streamed past; the step is retried.'));
    }
    this.waiters.clear();
  }
}
