import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../../daemon/retryBackoff.ts';

describe('retryDelayMs', () => {
  it('doubles from the least pause up to the cap, and stays there however long the outage', () => {
    expect([0, 1, 2, 5, 6, 7].map((attempt) => retryDelayMs(attempt))).toEqual([100, 200, 400, 3_200, 5_000, 5_000]);
    expect(retryDelayMs(10_000)).toBe(5_000);
    expect(retryDelayMs(3, { minMs: 10, maxMs: 60 })).toBe(60);
    expect(retryDelayMs(2, { minMs: 10, maxMs: 60 })).toBe(40);
  });
});
