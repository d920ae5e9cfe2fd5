import type { RecordScorer } from '../../lib/core/storageTable.ts';

/** The Redis storage tests' record: a primary key and a second index's score. */
export interface IdScoreRow {
  id: number;
  score: number;
  name?: string;
}

/** Scores {@link IdScoreRow}s: `primary_key` by id, `score` by score. */
export const idScoreScorer: RecordScorer<IdScoreRow, number> = {
  indexNames: ['primary_key', 'score'],
  score: (indexName, row) => (indexName === 'primary_key' ? row.id : row.score),
  primaryKey: (row) => row.id,
};

/** The whole numbers `from` to `to`, both included. */
export function idRange(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A row per id, scored `id + offset`. */
export function idScoreRows(ids: readonly number[], offset = 0): IdScoreRow[] {
  return ids.map((id) => ({ id, score: id + offset }));
}
