import { describe, expect, it } from 'vitest';
import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { PrimaryKeyRangeIndexes } from '../../../lib/core/primaryKeyRangeIndexes.ts';

interface Row {
  id: number;
}

const RANGE = 'SELECT * FROM t WHERE id >= $1 AND id < $2';

function makeIndexes(): PrimaryKeyRangeIndexes<Row> {
  return new PrimaryKeyRangeIndexes<Row>((row) => row.id, RANGE);
}

describe('PrimaryKeyRangeIndexes', () => {
  it('builds a half-open range spec and rejects other indexes and malformed ranges', () => {
    const indexes = makeIndexes();
    expect(indexes.createSpec('primary_key', { ge: 0, lt: 10 }).interval).toEqual(new Interval(0, 10));
    expect(() => indexes.createSpec('other', { ge: 0, lt: 10 })).toThrow(InvalidArgumentError);
    expect(() => indexes.createSpec('primary_key', { ge: 10, lt: 0 })).toThrow(InvalidArgumentError);
    expect(() => indexes.createSpec('primary_key', 5 as unknown as { ge: number; lt: number })).toThrow(InvalidArgumentError);
  });

  it('scores a record by its primary key', () => {
    expect(makeIndexes().score('primary_key', { id: 42 })).toBe(42);
    expect(() => makeIndexes().score('x', { id: 42 })).toThrow(InvalidArgumentError);
  });

  it('reads the range from storage as its interval and from the database with ge and lt as parameters', () => {
    const indexes = makeIndexes();
    const spec = indexes.createSpec('primary_key', { ge: 5, lt: 8 });
    expect(indexes.storageRecordsSpec(spec).scoreIntervals).toEqual([new Interval(5, 8)]);
    // A range names no exact keys (non-integer keys may lie in it), so storage must read it.
    expect(indexes.storageRecordsSpec(spec).primaryKeys).toBeUndefined();
    expect(indexes.dbRecordsSpec(spec)).toEqual(new QueryArgsDbRecordsSpec(RANGE, [5, 8]));
  });

  it('expires nothing on the first adjustment and loads the whole range', () => {
    const indexes = makeIndexes();
    const adjustment = indexes.prepareAdjustment(indexes.createSpec('primary_key', { ge: 0, lt: 10 }));
    expect(adjustment.expireSpec).toBeNull();
    expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(RANGE, [0, 10]));
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 0, lt: 1 }))).toBe(false);
  });

  it('covers sub-ranges of the committed range only', () => {
    const indexes = makeIndexes();
    indexes.commitAdjustment(indexes.prepareAdjustment(indexes.createSpec('primary_key', { ge: 0, lt: 10 })));
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 0, lt: 10 }))).toBe(true);
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 3, lt: 4 }))).toBe(true);
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 5, lt: 11 }))).toBe(false);
    expect(indexes.coverage()).toEqual({ primary_key: [new Interval(0, 10)] });
  });

  it('expires the whole current range and loads the whole new one on a later adjustment', () => {
    const indexes = makeIndexes();
    indexes.commitAdjustment(indexes.prepareAdjustment(indexes.createSpec('primary_key', { ge: 0, lt: 10 })));
    const adjustment = indexes.prepareAdjustment(indexes.createSpec('primary_key', { ge: 5, lt: 15 }));
    expect(adjustment.expireSpec?.scoreIntervals).toEqual([new Interval(0, 10)]);
    expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(RANGE, [5, 15]));
    indexes.commitAdjustment(adjustment);
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 0, lt: 5 }))).toBe(false);
    expect(indexes.covers(indexes.createSpec('primary_key', { ge: 5, lt: 15 }))).toBe(true);
  });
});
