import { createRequire } from 'node:module';
import type sortedBtree from 'sorted-btree';
import { InvalidArgumentError } from '../core/errors.ts';
import type { Score } from '../core/interval.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { PrimaryKey, RecordScorer } from '../core/storageTable.ts';

// sorted-btree is CommonJS with `exports.default`; Node's ESM loader and
// vitest disagree on what a default import of it is, while require() gives
// module.exports everywhere.
const { default: BTree } = createRequire(import.meta.url)('sorted-btree') as typeof sortedBtree;

/** A record with its primary key and its score in every index (in the scorer's index order). */
export interface ScoredRecord<R, PK extends PrimaryKey> {
  readonly record: R;
  readonly pk: PK;
  readonly scores: readonly Score[];
}

/**
 * Scores a record in every index and checks the scores, before anything is
 * stored, so a bad record leaves the table untouched.
 *
 * @throws {@link InvalidArgumentError} when a score is not a number or is NaN
 *   (NaN has no place in a sort order).
 */
export function scoreRecord<R, PK extends PrimaryKey>(scorer: RecordScorer<R, PK>, record: R): ScoredRecord<R, PK> {
  const pk = scorer.primaryKey(record);
  const scores = scorer.indexNames.map((indexName) => {
    const score = scorer.score(indexName, record);
    if (typeof score !== 'number' || Number.isNaN(score)) {
      throw new InvalidArgumentError(
        `Record with primary key ${String(pk)} has score ${String(score)} in index "${indexName}"; ` +
          'scores must be numbers (finite or ±Infinity), not NaN.',
      );
    }
    return score;
  });
  return { record, pk, scores };
}

/** The records of one index that share a score (rare for most indexes, so a lone record is stored bare). */
class SharedScore<R, PK extends PrimaryKey> {
  readonly byPk = new Map<PK, R>();
}

type Slot<R, PK extends PrimaryKey> = R | SharedScore<R, PK>;
type ScoreTree<R, PK extends PrimaryKey> = sortedBtree.default<Score, Slot<R, PK>>;

// Scores are never NaN here; ±Infinity must compare equal to itself, which `a - b` does not give.
const compareScores = (a: Score, b: Score): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Records in one B+ tree per index keyed by score, plus each primary key's
 * scores: insert and remove cost O(log n), a range read O(log n + what it
 * returns). Tree keys are plain numbers and tree values the records
 * themselves, so a range read compares no boxed keys and dereferences no
 * per-record bookkeeping.
 */
export class IndexedRecords<R, PK extends PrimaryKey> {
  readonly #indexNames: readonly string[];
  readonly #primaryKey: (record: R) => PK;
  readonly #scoresByPk = new Map<PK, readonly Score[]>();
  readonly #trees: ScoreTree<R, PK>[];

  constructor(scorer: RecordScorer<R, PK>) {
    this.#indexNames = scorer.indexNames;
    this.#primaryKey = (record) => scorer.primaryKey(record);
    this.#trees = this.#indexNames.map(() => new BTree<Score, Slot<R, PK>>(undefined, compareScores));
  }

  /** How many records are held. */
  get size(): number {
    return this.#scoresByPk.size;
  }

  /** Every held record with its scores, in no particular order. */
  *scoredRecords(): IterableIterator<ScoredRecord<R, PK>> {
    for (const slot of this.#trees[0]!.values()) {
      for (const record of slot instanceof SharedScore ? slot.byPk.values() : [slot]) {
        const pk = this.#primaryKey(record);
        yield { record, pk, scores: this.#scoresByPk.get(pk)! };
      }
    }
  }

  /** Stores `scored`, replacing (in every index) the record with its primary key. */
  put({ record, pk, scores }: ScoredRecord<R, PK>): void {
    this.remove(pk);
    this.#scoresByPk.set(pk, scores);
    scores.forEach((score, i) => this.#add(this.#trees[i]!, score, pk, record));
  }

  /** Removes the record with primary key `pk` from every index; returns whether there was one. */
  remove(pk: PK): boolean {
    const scores = this.#scoresByPk.get(pk);
    if (scores === undefined) return false;
    this.#scoresByPk.delete(pk);
    scores.forEach((score, i) => this.#delete(this.#trees[i]!, score, pk));
    return true;
  }

  /** Removes every record. */
  clear(): void {
    this.#scoresByPk.clear();
    for (const tree of this.#trees) tree.clear();
  }

  /**
   * The records `spec` selects, collected synchronously so the result is one
   * consistent state even if the caller hands them out across later ticks.
   *
   * @throws {@link InvalidArgumentError} when the spec names an unknown index.
   */
  select(spec: StorageRecordsSpec<R>): R[] {
    const tree = this.#trees[this.#indexPosition(spec.indexName)]!;
    const selected: R[] = [];
    const visit = (record: R): void => {
      if (spec.accepts(record)) selected.push(record);
    };
    for (const interval of spec.scoreIntervals) {
      if (interval.isEmpty) continue;
      tree.forRange(interval.ge, interval.lt, false, (_score, slot) => {
        if (slot instanceof SharedScore) slot.byPk.forEach(visit);
        else visit(slot);
      });
    }
    return selected;
  }

  /**
   * Like {@link IndexedRecords.select}, with each record's primary key.
   *
   * @throws {@link InvalidArgumentError} when the spec names an unknown index.
   */
  selectWithKeys(spec: StorageRecordsSpec<R>): { readonly pk: PK; readonly record: R }[] {
    return this.select(spec).map((record) => ({ pk: this.#primaryKey(record), record }));
  }

  #add(tree: ScoreTree<R, PK>, score: Score, pk: PK, record: R): void {
    if (tree.set(score, record, false)) return;
    const slot = tree.get(score)!;
    if (slot instanceof SharedScore) {
      slot.byPk.set(pk, record);
      return;
    }
    const shared = new SharedScore<R, PK>();
    shared.byPk.set(this.#primaryKey(slot), slot);
    shared.byPk.set(pk, record);
    tree.set(score, shared);
  }

  #delete(tree: ScoreTree<R, PK>, score: Score, pk: PK): void {
    const slot = tree.get(score);
    if (!(slot instanceof SharedScore)) {
      tree.delete(score);
      return;
    }
    slot.byPk.delete(pk);
    if (slot.byPk.size > 1) return;
    const [remaining] = slot.byPk.values();
    if (remaining === undefined) tree.delete(score);
    else tree.set(score, remaining);
  }

  #indexPosition(indexName: string): number {
    const position = this.#indexNames.indexOf(indexName);
    if (position < 0) {
      throw new InvalidArgumentError(
        `No index "${indexName}" in this storage table; its indexes are ${this.#indexNames.map((n) => `"${n}"`).join(', ')}.`,
      );
    }
    return position;
  }
}
