import type { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { CoverageUpdate, StorageTable } from '../../../lib/core/storageTable.ts';
import { deferred, type Deferred } from './deferred.ts';

/** What an {@link InstrumentedStorage} saw, in order. */
export type StorageEvent =
  | 'clear'
  | 'put'
  | 'delete'
  | 'markLoaded'
  | 'scratch discard start'
  | 'scratch discard end'
  | 'scratch put start'
  | 'scratch put end'
  | 'scratch merge'
  | 'scratch reset';

/**
 * Wraps a real storage and records what the cached table does with it: the
 * order of operations, how many scratch operations overlap (staging of two
 * sessions at once would), and the coverage each merge publishes. A test can
 * hold merges at a gate to look at the state in between.
 */
export class InstrumentedStorage<R> implements StorageTable<R> {
  readonly events: StorageEvent[] = [];
  readonly mergeUpdates: (CoverageUpdate | undefined)[] = [];
  private activeScratchOps = 0;
  private mostActiveScratchOps = 0;
  private readonly mergeHolds: { reached: Deferred; released: Deferred }[] = [];

  constructor(private readonly inner: StorageTable<R>) {}

  get name(): string {
    return this.inner.name;
  }

  /** The most scratch operations that were in progress at the same time. */
  get maxConcurrentScratchOps(): number {
    return this.mostActiveScratchOps;
  }

  /** How many times scratch space was merged. */
  get mergeCount(): number {
    return this.events.filter((event) => event === 'scratch merge').length;
  }

  async clear(): Promise<void> {
    this.events.push('clear');
    await this.inner.clear();
  }

  async putRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    this.events.push('put');
    return this.inner.putRecords(records);
  }

  getRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    return this.inner.getRecords(spec);
  }

  async *deleteRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    this.events.push('delete');
    yield* this.inner.deleteRecords(spec);
  }

  async scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    this.beginScratchOp('scratch put start');
    try {
      return await this.inner.scratchPutRecords(records);
    } finally {
      this.endScratchOp('scratch put end');
    }
  }

  async *scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncIterable<R> {
    this.beginScratchOp('scratch discard start');
    try {
      yield* this.inner.scratchDiscardRecords(spec);
    } finally {
      this.endScratchOp('scratch discard end');
    }
  }

  /** Holds the next merge before it reaches the wrapped storage, until released. */
  holdNextMerge(): { readonly reached: Promise<void>; release(): void } {
    const hold = { reached: deferred(), released: deferred() };
    this.mergeHolds.push(hold);
    return { reached: hold.reached.promise, release: () => hold.released.resolve() };
  }

  async scratchMerge(update?: CoverageUpdate): Promise<void> {
    const hold = this.mergeHolds.shift();
    if (hold) {
      hold.reached.resolve();
      await hold.released.promise;
    }
    this.events.push('scratch merge');
    this.mergeUpdates.push(update);
    await this.inner.scratchMerge(update);
  }

  async scratchReset(): Promise<void> {
    this.events.push('scratch reset');
    await this.inner.scratchReset();
  }

  async markLoaded(update: CoverageUpdate): Promise<void> {
    this.events.push('markLoaded');
    await this.inner.markLoaded(update);
  }

  private beginScratchOp(event: StorageEvent): void {
    this.events.push(event);
    this.activeScratchOps++;
    this.mostActiveScratchOps = Math.max(this.mostActiveScratchOps, this.activeScratchOps);
  }

  private endScratchOp(event: StorageEvent): void {
    this.events.push(event);
    this.activeScratchOps--;
  }
}
