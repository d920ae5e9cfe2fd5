import type { RecordScorer } from '../../../../lib/core/storageTable.ts';

/** A record that carries the writer step that wrote it. */
export interface StampedRecord {
  id: number;
  stamp: string;
}

export const stampedScorer: RecordScorer<StampedRecord, number> = {
  indexNames: ['primary_key'],
  score: (_, record) => record.id,
  primaryKey: (record) => record.id,
};

export function stampedRecords(count: number, stamp: string): StampedRecord[] {
  return Array.from({ length: count }, (_, id) => ({ id, stamp }));
}
