import type { RecordScorer } from '../../../../lib/core/storageTable.ts';

/** A row of the torn-read test: every row a writer step writes carries that step's stamp. */
export interface StampedRow {
  id: number;
  bucket: number;
  stamp: number;
  payload: string;
}

export const stampedTableScorer: RecordScorer<StampedRow, number> = {
  indexNames: ['primary_key', 'bucket'],
  score: (indexName, row) => (indexName === 'primary_key' ? row.id : row.bucket),
  primaryKey: (row) => row.id,
};

export function stampedRecord(id: number, stamp: number): StampedRow {
  return { id, bucket: id % 10, stamp, payload: `row ${id} of step ${stamp}` };
}
