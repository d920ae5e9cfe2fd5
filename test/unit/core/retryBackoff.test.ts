import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../../lib/core/retryBackoff.ts';

/** A seeded uniform source in [0, 1) (a 32-bit LCG): the same pauses on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('retryDelayMs', () => {
  it('draws each pause from 0 up to a ceiling that doubles from the least pause up to the cap, and stays there however long the outage', () => {
    const top = () => 1 - 2 ** -53;
    expect([0, 1, 2, 5, 6, 7].map((attempt) => retryDelayMs(attempt, { minMs: 100, maxMs: 5_000, random: top }))).toEqual([99, 199, 399, 3_199, 4_999, 4_999]);
    expect(retryDelayMs(10_000, { minMs: 100, maxMs: 5_000, random: top })).toBe(4_999);
    expect(retryDelayMs(2, { minMs: 10, maxMs: 60, random: () => 0.5 })).toBe(20);
    expect(retryDelayMs(3, { minMs: 10, maxMs: 60, random: () => 0.5 })).toBe(30);
    expect(retryDelayMs(3, { minMs: 10, maxMs: 60, random: () => 0 })).toBe(0);
  });

  it('spreads 100 daemons that lost one server at once over the interval instead of retrying in lockstep', () => {
    const random = seeded(42);
    for (const attempt of [0, 3, 10]) {
      const pauses = Array.from({ length: 100 }, () => retryDelayMs(attempt, { minMs: 100, maxMs: 5_000, random }));
      const ceiling = Math.min(5_000, 100 * 2 ** attempt);
      expect(pauses.every((pause) => pause >= 0 && pause < ceiling)).toBe(true);
      // Uniform over the interval: no tenth of it holds more than a quarter of the daemons.
      const perTenth = new Array<number>(10).fill(0);
      for (const pause of pauses) perTenth[Math.floor((pause / ceiling) * 10)]!++;
      expect(Math.max(...perTenth)).toBeLessThanOrEqual(25);
      expect(new Set(pauses).size).toBeGreaterThan(attempt === 0 ? 50 : 90);
    }
  });

  it('uses Math.random by default, within the same bounds', () => {
    for (let i = 0; i < 50; i++) expect(retryDelayMs(6)).toBeLessThan(5_000);
  });
});
