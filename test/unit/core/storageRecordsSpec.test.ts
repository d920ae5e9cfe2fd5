import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';

describe('StorageRecordsSpec', () => {
  it('accepts intervals that only touch, in any order', () => {
    const spec = new StorageRecordsSpec('i', [new Interval(5, 10), new Interval(0, 5), new Interval(20, 30)]);
    expect(spec.scoreIntervals).toHaveLength(3);
  });

  it('rejects overlapping intervals with TC_INVALID_ARGUMENT naming them and the index', () => {
    const attempt = () => new StorageRecordsSpec('city', [new Interval(0, 10), new Interval(20, 30), new Interval(9, 12)]);
    expect(attempt).toThrow(InvalidArgumentError);
    expect(attempt).toThrow(/\[0, 10\) overlaps \[9, 12\) in index "city"/);
  });

  it('rejects an interval nested in another that is not its neighbour', () => {
    expect(() => new StorageRecordsSpec('i', [new Interval(0, 100), new Interval(10, 20), new Interval(30, 40)])).toThrow(
      InvalidArgumentError,
    );
  });

  it('rejects the same interval given twice', () => {
    expect(() => new StorageRecordsSpec('i', [Interval.onlyContaining(1), Interval.onlyContaining(1)])).toThrow(InvalidArgumentError);
  });

  it('accepts every record without a recheck predicate, and filters with one', () => {
    expect(new StorageRecordsSpec<number>('i', []).accepts(7)).toBe(true);
    const even = new StorageRecordsSpec<number>('i', [Interval.everything()], (n) => n % 2 === 0);
    expect(even.accepts(4)).toBe(true);
    expect(even.accepts(5)).toBe(false);
  });
});
