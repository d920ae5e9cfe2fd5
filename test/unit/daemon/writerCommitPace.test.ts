import { describe, expect, it } from 'vitest';
import { WriterCommitPace } from '../../../daemon/writerCommitPace.ts';

/** A pace that saw changes `gapMs` apart up to `until`. */
function paced(gapMs: number, until: number): WriterCommitPace {
  const pace = new WriterCommitPace();
  for (let at = 0; at <= until; at += gapMs) pace.committed(at);
  return pace;
}

describe('WriterCommitPace', () => {
  it('is not active before any change, nor at 100 changes a second', () => {
    expect(new WriterCommitPace().active(0)).toBe(false);
    expect(paced(10, 1_000).active(1_001)).toBe(false);
  });

  it('is active at 1,000 changes a second, and gives a grace of about twice the gap, at least 0.5 ms', () => {
    const pace = paced(1, 1_000);
    expect(pace.active(1_000.5)).toBe(true);
    expect(pace.graceMs()).toBeCloseTo(2, 5);
    expect(paced(0.1, 100).graceMs()).toBe(0.5);
  });

  it('is no longer active once the writers pause, and after a pause needs a few quick changes again', () => {
    const pace = paced(1, 1_000);
    expect(pace.active(1_010)).toBe(false);
    pace.committed(1_100);
    // One change after a pause: the gap average went up, the next cut ticks at once.
    expect(pace.active(1_100.5)).toBe(false);
    for (let at = 1_101; at <= 1_120; at++) pace.committed(at);
    expect(pace.active(1_120.5)).toBe(true);
  });
});
