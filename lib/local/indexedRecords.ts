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

/**
 * How records are held: `encode` gives what is stored in place of a record,
 * `decode` gives the record back. Both run synchronously, `encode` before
 * anything is changed, so an encoding error leaves the records untouched.
 */
export interface StoredForm<R, S> {
  encode(record: R): S;
  decode(stored: S): R;
}

/** Records held as the very instances that were put. */
export const AS_GIVEN: StoredForm<never, never> = { encode: (record) => record, decode: (stored) => stored };

/** The records of one index that share a score (rare for most indexes, so a lone record is stored bare). */
class SharedScore<S, PK extends PrimaryKey> {
  readonly byPk = new Map<PK, S>();
}

type Slot<S, PK extends PrimaryKey> = S | SharedScore<S, PK>;
type ScoreTree<S, PK extends PrimaryKey> = sortedBtree.default<Score, Slot<S, PK>>;

/**
 * Entries per B+ tree node. Measured with 1,000,000 records put in random
 * order and one index: 64 holds the index (tree and map) in 56 bytes per
 * record against 65 with sorted-btree's default of 32 (fewer, fuller nodes),
 * at the same insert and range-read speed; 128 is no smaller and inserts slower.
 */
const ENTRIES_PER_NODE = 64;

// Scores are never NaN here; ±Infinity must compare equal to itself, which `a - b` does not give.
const compareScores = (a: Score, b: Score): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Records in one B+ tree per index keyed by score, plus one map per index
 * from primary key to score: insert and remove cost O(log n), a range read
 * O(log n + what it returns).
 *
 * Memory is what limits a cache in the process, so nothing is allocated per
 * record beyond the stored value, one tree entry and one map entry per index:
 * tree values are the stored values themselves (no wrapper), and scores live
 * in the maps (an integer score up to 2^31 is stored inline there) rather
 * than in an array per record.
 */
export class IndexedRecords<R, PK extends PrimaryKey, S = R> {
  readonly #indexNames: readonly string[];
  readonly #scorer: RecordScorer<R, PK>;
  readonly #form: StoredForm<R, S>;
  readonly #scoresByPk: Map<PK, Score>[];
  readonly #trees: ScoreTree<S, PK>[];
  /** The scores of the record being put, checked before anything changes; reused so a put allocates no array. */
  readonly #scores: Float64Array;

  constructor(scorer: RecordScorer<R, PK>, form: StoredForm<R, S>) {
    this.#indexNames = scorer.indexNames;
    this.#scorer = scorer;
    this.#form = form;
    this.#scoresByPk = this.#indexNames.map(() => new Map<PK, Score>());
    this.#trees = this.#indexNames.map(() => new BTree<Score, Slot<S, PK>>(undefined, compareScores, ENTRIES_PER_NODE));
    this.#scores = new Float64Array(this.#indexNames.length);
  }

  /** How many records are held. */
  get size(): number {
    return this.#scoresByPk[0]!.size;
  }

  /**
   * Stores `record`, replacing (in every index) the record with its primary
   * key; returns the primary key.
   *
   * @throws {@link InvalidArgumentError} when a score is not a number or is
   *   NaN (NaN has no place in a sort order); nothing is changed then.
   */
  put(record: R): PK {
    const pk = this.#scorer.primaryKey(record);
    this.#indexNames.forEach((indexName, i) => {
      this.#scores[i] = checkedScore(indexName, pk, this.#scorer.score(indexName, record));
    });
    this.#putScored(pk, this.#form.encode(record));
    return pk;
  }

  /** Moves every record of `source` (which must hold records the same way) into this one, replacing those with the same keys. */
  putAll(source: IndexedRecords<R, PK, S>): void {
    for (const [pk, score] of source.#scoresByPk[0]!) {
      this.#scores[0] = score;
      for (let i = 1; i < this.#scores.length; i++) this.#scores[i] = source.#scoresByPk[i]!.get(pk)!;
      this.#putScored(pk, source.#storedAt(score, pk));
    }
  }

  /** Whether a record with primary key `pk` is held. */
  has(pk: PK): boolean {
    return this.#scoresByPk[0]!.has(pk);
  }

  /** Removes the record with primary key `pk` from every index; returns whether there was one. */
  remove(pk: PK): boolean {
    if (!this.#scoresByPk[0]!.has(pk)) return false;
    this.#scoresByPk.forEach((scores, i) => {
      this.#delete(this.#trees[i]!, scores.get(pk)!, pk);
      scores.delete(pk);
    });
    return true;
  }

  /** Removes every record. */
  clear(): void {
    for (const scores of this.#scoresByPk) scores.clear();
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
    const visit = (stored: S): void => {
      const record = this.#form.decode(stored);
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
    return this.select(spec).map((record) => ({ pk: this.#scorer.primaryKey(record), record }));
  }

  /** Stores `stored` under `pk` with the scores just written to `#scores`. */
  #putScored(pk: PK, stored: S): void {
    this.remove(pk);
    this.#scoresByPk.forEach((scores, i) => {
      const score = this.#scores[i]!;
      scores.set(pk, score);
      this.#add(this.#trees[i]!, score, pk, stored);
    });
  }

  /** The stored value of the record with primary key `pk`, whose score in the first index is `score`. */
  #storedAt(score: Score, pk: PK): S {
    const slot = this.#trees[0]!.get(score)!;
    return slot instanceof SharedScore ? slot.byPk.get(pk)! : slot;
  }

  #add(tree: ScoreTree<S, PK>, score: Score, pk: PK, stored: S): void {
    if (tree.set(score, stored, false)) return;
    const slot = tree.get(score)!;
    if (slot instanceof SharedScore) {
      slot.byPk.set(pk, stored);
      return;
    }
    const shared = new SharedScore<S, PK>();
    shared.byPk.set(this.#scorer.primaryKey(this.#form.decode(slot)), slot);
    shared.byPk.set(pk, stored);
    tree.set(score, shared);
  }

  #delete(tree: ScoreTree<S, PK>, score: Score, pk: PK): void {
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

function checkedScore<PK extends PrimaryKey>(indexName: string, pk: PK, score: Score): Score {
  if (typeof score === 'number' && !Number.isNaN(score)) return score;
  throw new InvalidArgumentError(
    `Record with primary key ${String(pk)} has score ${String(score)} in index "${indexName}"; ` +
      'scores must be numbers (finite or ±Infinity), not NaN.',
  );
}
