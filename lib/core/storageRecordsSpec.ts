import { InvalidArgumentError } from './errors.ts';
import type { Interval } from './interval.ts';
import type { PrimaryKey } from './storageTable.ts';

/** A filter applied to records after the score lookup (scores may collide). */
export type RecheckPredicate<R> = (record: R) => boolean;

/**
 * Which records to read from (or delete in) a storage table: those whose score
 * in `indexName` lies in one of `scoreIntervals` and that pass
 * `recheckPredicate`.
 *
 * The intervals must not overlap, so that no record is returned twice.
 *
 * A spec that selects exact primary keys also carries them as `primaryKeys`,
 * so that a refresh can delete those records without reading them first.
 */
export class StorageRecordsSpec<R> {
  /**
   * @throws {@link InvalidArgumentError} when two intervals overlap.
   */
  constructor(
    readonly indexName: string,
    readonly scoreIntervals: readonly Interval[],
    readonly recheckPredicate?: RecheckPredicate<R>,
    /**
     * Set when the spec selects exactly the records with these canonical
     * primary keys (and nothing else); storage may then delete them without
     * reading them.
     */
    readonly primaryKeys?: readonly PrimaryKey[],
  ) {
    const sorted = [...scoreIntervals].sort((a, b) => a.ge - b.ge);
    for (let i = 1; i < sorted.length; i++) {
      const left = sorted[i - 1]!;
      const right = sorted[i]!;
      if (left.lt > right.ge) {
        throw new InvalidArgumentError(
          `Score intervals of a StorageRecordsSpec must not overlap: ${left} overlaps ${right} in index "${indexName}".`,
        );
      }
    }
  }

  /** Whether `record` passes the recheck predicate (always true without one). */
  accepts(record: R): boolean {
    return this.recheckPredicate === undefined || this.recheckPredicate(record);
  }

  toString(): string {
    const intervals = this.scoreIntervals.length > 4
      ? `${this.scoreIntervals.slice(0, 4).join(', ')} and ${this.scoreIntervals.length - 4} more`
      : this.scoreIntervals.join(', ');
    return `records with ${this.indexName} scores in ${intervals}${this.recheckPredicate ? ' (rechecked)' : ''}`;
  }
}
