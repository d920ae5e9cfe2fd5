import { describe, expect, it } from 'vitest';
import { primaryKeyScore } from '../../../lib/core/primaryKeyScore.ts';

// These values are part of the storage format: readers in other processes and
// other languages compute the same scores, so a change here breaks them.
describe('primaryKeyScore', () => {
  it('scores a number as itself', () => {
    expect(primaryKeyScore(1)).toBe(1);
    expect(primaryKeyScore(-42.5)).toBe(-42.5);
    expect(primaryKeyScore(0)).toBe(0);
  });

  it('scores a bigint as the nearest float64', () => {
    expect(primaryKeyScore(7n)).toBe(7);
    expect(primaryKeyScore(-(2n ** 40n))).toBe(-(2 ** 40));
    expect(primaryKeyScore(2n ** 53n + 1n)).toBe(9007199254740992);
    expect(primaryKeyScore(2n ** 64n)).toBe(18446744073709552000);
  });

  it('scores a string as its 64-bit FNV-1a hash over UTF-8, cut to 53 bits', () => {
    expect(primaryKeyScore('')).toBe(5239054864098085);
    expect(primaryKeyScore('a')).toBe(1086646154030220);
    expect(primaryKeyScore('0')).toBe(1034969107504303);
    expect(primaryKeyScore('user:1')).toBe(8332831223192811);
    expect(primaryKeyScore('héllo')).toBe(8997439310807264);
  });

  it('gives every string an exact integer score below 2^53', () => {
    for (const key of ['', 'a', 'a longer key with spaces', '🙂', 'x'.repeat(1000)]) {
      const score = primaryKeyScore(key);
      expect(Number.isSafeInteger(score)).toBe(true);
      expect(score).toBeGreaterThanOrEqual(0);
    }
  });

  it('scores the string of a number differently from the number', () => {
    expect(primaryKeyScore('1')).not.toBe(primaryKeyScore(1));
  });
});
