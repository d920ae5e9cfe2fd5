import type { Interval } from './interval.ts';

/** One invalidation to carry out: delete what `oldSpec` names in storage, load what `newSpec` names from the database. */
export interface RefreshPair<S> {
  readonly oldSpec: S;
  readonly newSpec: S;
}

/** Invalidations gathered since the last refresh started. */
class InvalidationBatch<S> {
  readonly pairs: RefreshPair<S>[] = [];
  readonly intervalsByIndex = new Map<string, Interval[]>();
  readonly dirtyIndexes = new Set<string>();

  intersects(indexName: string, interval: Interval): boolean {
    if (this.dirtyIndexes.has(indexName)) return true;
    return this.intervalsByIndex.get(indexName)?.some((invalid) => invalid.intersects(interval)) ?? false;
  }

  absorb(other: InvalidationBatch<S>): void {
    this.pairs.push(...other.pairs);
    for (const name of other.dirtyIndexes) this.dirtyIndexes.add(name);
    for (const [name, intervals] of other.intervalsByIndex) {
      const mine = this.intervalsByIndex.get(name);
      if (mine) mine.push(...intervals);
      else this.intervalsByIndex.set(name, [...intervals]);
    }
  }
}

/** A batch taken for a refresh; hand it back with `complete` or `restore`. */
export type TakenBatch<S> = InvalidationBatch<S>;

/**
 * Remembers which records are invalid and how to refresh them.
 *
 * A refresh takes the pending invalidations as a batch and leaves an empty
 * pending set behind, so invalidations that arrive while the refresh reads the
 * database are kept for the next one instead of being cleared with it. Until
 * the batch is completed (its records merged into storage), its intervals
 * still count as invalid for reads.
 */
export class InvalidRecordRepository<S> {
  private pending = new InvalidationBatch<S>();
  private readonly inFlight = new Set<InvalidationBatch<S>>();

  /**
   * @param indexNames - every index of the Indexes.
   * @param storageRecordsSpec - turns a spec into the storage records (and so the score intervals) it names.
   */
  constructor(
    private readonly indexNames: readonly string[],
    private readonly storageRecordsSpec: (spec: S) => { readonly scoreIntervals: readonly Interval[] },
  ) {}

  /** How many invalidations wait for a refresh. */
  get pendingCount(): number {
    return this.pending.pairs.length;
  }

  /** Whether any invalidation waits for a refresh or is being refreshed right now. */
  get hasInvalid(): boolean {
    return this.pending.pairs.length > 0 || this.inFlight.size > 0;
  }

  /**
   * Records an invalidation. `oldByIndex` / `newByIndex` map index names to
   * specs of the same records before and after the change; the pair used for
   * the refresh is (`oldByIndex[refreshOld]`, `newByIndex[refreshNew]`).
   *
   * When `invalidForReads` is set, the specs' score intervals count as invalid
   * for reads, and an index missing from either map becomes dirty (every
   * read on it refreshes first), since nothing tells which of its scores
   * changed.
   */
  flagInvalid(
    oldByIndex: ReadonlyMap<string, S>,
    newByIndex: ReadonlyMap<string, S>,
    refreshOld: S,
    refreshNew: S,
    invalidForReads: boolean,
  ): void {
    this.pending.pairs.push({ oldSpec: refreshOld, newSpec: refreshNew });
    if (!invalidForReads) return;
    for (const indexName of this.indexNames) {
      const oldSpec = oldByIndex.get(indexName);
      const newSpec = newByIndex.get(indexName);
      if (oldSpec === undefined || newSpec === undefined) {
        this.pending.dirtyIndexes.add(indexName);
        continue;
      }
      const intervals = this.pending.intervalsByIndex.get(indexName) ?? [];
      intervals.push(...this.storageRecordsSpec(oldSpec).scoreIntervals, ...this.storageRecordsSpec(newSpec).scoreIntervals);
      this.pending.intervalsByIndex.set(indexName, intervals);
    }
  }

  /** Whether a read of `interval` in `indexName` could meet an invalid record (pending or being refreshed). */
  intersectsInvalid(indexName: string, interval: Interval): boolean {
    if (this.pending.intersects(indexName, interval)) return true;
    for (const batch of this.inFlight) if (batch.intersects(indexName, interval)) return true;
    return false;
  }

  /** Takes every pending invalidation for a refresh, or `null` when there is none. */
  take(): TakenBatch<S> | null {
    if (this.pending.pairs.length === 0) return null;
    const batch = this.pending;
    this.pending = new InvalidationBatch<S>();
    this.inFlight.add(batch);
    return batch;
  }

  /** The batch's records are merged into storage: its invalidations are done. */
  complete(batch: TakenBatch<S>): void {
    this.inFlight.delete(batch);
  }

  /** The refresh of the batch failed: its invalidations are pending again. */
  restore(batch: TakenBatch<S>): void {
    this.inFlight.delete(batch);
    batch.absorb(this.pending);
    this.pending = batch;
  }
}
