import { describe, expect, it } from 'vitest';
import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { AllIndexes } from '../../../lib/core/allIndexes.ts';
import { Interval } from '../../../lib/core/interval.ts';

interface Row {
  id: number;
  kind: string;
}

const ALL = 'SELECT * FROM t';

describe('AllIndexes', () => {
  const indexes = new AllIndexes<Row, number>((row) => row.id, ALL);

  it('has only the index "all", where every record scores 0', () => {
    expect(indexes.indexNames).toEqual(['all']);
    expect(indexes.score('all', { id: 5, kind: 'a' })).toBe(0);
    expect(() => indexes.score('id', { id: 5, kind: 'a' })).toThrow(InvalidArgumentError);
    expect(() => indexes.createSpec('id')).toThrow(InvalidArgumentError);
  });

  it('covers everything, always', () => {
    expect(indexes.covers(indexes.createSpec('all'))).toBe(true);
    expect(indexes.coverage()).toEqual({ all: [Interval.everything()] });
  });

  it('reads every record from storage, filtered by the recheck, and the whole query from the database', () => {
    const spec = indexes.createSpec('all', { recheck: (row) => row.kind === 'b' });
    const storageSpec = indexes.storageRecordsSpec(spec);
    expect(storageSpec.scoreIntervals).toEqual([Interval.everything()]);
    expect(storageSpec.accepts({ id: 1, kind: 'b' })).toBe(true);
    expect(storageSpec.accepts({ id: 1, kind: 'a' })).toBe(false);
    expect(indexes.dbRecordsSpec(spec)).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
  });

  it('takes { all: true }, the spelling every Indexes shares, as the same spec as none, and refuses all: false', () => {
    expect(indexes.createSpec('all', { all: true })).toEqual(indexes.createSpec('all'));
    expect(indexes.storageRecordsSpec(indexes.createSpec('all', { all: true })).scoreIntervals).toEqual([Interval.everything()]);
    expect(() => indexes.createSpec('all', { all: false } as unknown as { all: true })).toThrow(
      'AllIndexes specs always name every record: all must be true or left out, got false.',
    );
  });

  it('adjusts by loading everything again and expiring nothing', () => {
    const adjustment = indexes.prepareAdjustment(indexes.createSpec('all'));
    expect(adjustment.expireSpec).toBeNull();
    expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
  });
});
