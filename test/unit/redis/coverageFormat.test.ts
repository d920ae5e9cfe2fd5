import { describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { coverageCovers, decodeCoverage, encodeCoverage } from '../../../lib/redis/coverageFormat.ts';

describe('the published coverage', () => {
  it('round-trips intervals per index, infinite and fractional bounds included', () => {
    const coverage = { primary_key: [new Interval(-Infinity, 0), new Interval(0.1, 1 / 3)], city: [Interval.everything()], empty: [] };
    expect(encodeCoverage(coverage)).toBe('{"primary_key":[["-inf","0"],["0.1","0.3333333333333333"]],"city":[["-inf","inf"]],"empty":[]}');
    expect(decodeCoverage(encodeCoverage(coverage))).toEqual(coverage);
  });

  it('stores "cannot say" as null', () => {
    expect(encodeCoverage(null)).toBe('null');
    expect(decodeCoverage('null')).toBeNull();
  });

  it('refuses text that is not coverage, saying to reload the cache', () => {
    expect(() => decodeCoverage('{oops')).toThrow(/not JSON.*reload the cache/);
    expect(() => decodeCoverage('[1]')).toThrow(/not an object of index names/);
    expect(() => decodeCoverage('{"a":[["1"]]}')).toThrow(/index "a" is not a list of \[ge, lt\] pairs/);
  });
});

describe('coverageCovers', () => {
  const coverage = { id: [new Interval(10, 20), new Interval(0, 5), new Interval(5, 10), new Interval(30, 40)] };

  it('joins adjacent intervals, in any order', () => {
    expect(coverageCovers(coverage, 'id', [new Interval(2, 18)])).toBe(true);
    expect(coverageCovers(coverage, 'id', [new Interval(0, 20)])).toBe(true);
  });

  it('finds gaps and ranges beyond the ends', () => {
    expect(coverageCovers(coverage, 'id', [new Interval(15, 31)])).toBe(false);
    expect(coverageCovers(coverage, 'id', [new Interval(-1, 3)])).toBe(false);
    expect(coverageCovers(coverage, 'id', [new Interval(35, 41)])).toBe(false);
  });

  it('needs every interval covered, counts empty intervals as covered', () => {
    expect(coverageCovers(coverage, 'id', [new Interval(0, 1), new Interval(31, 32)])).toBe(true);
    expect(coverageCovers(coverage, 'id', [new Interval(0, 1), new Interval(25, 26)])).toBe(false);
    expect(coverageCovers(coverage, 'id', [new Interval(25, 25)])).toBe(true);
  });

  it('covers nothing of an index without coverage, or when none was published', () => {
    expect(coverageCovers(coverage, 'other', [new Interval(0, 1)])).toBe(false);
    expect(coverageCovers(null, 'id', [new Interval(0, 1)])).toBe(false);
  });

  it('covers everything, infinities included, with the interval of everything', () => {
    expect(coverageCovers({ id: [Interval.everything()] }, 'id', [Interval.everything()])).toBe(true);
  });
});
