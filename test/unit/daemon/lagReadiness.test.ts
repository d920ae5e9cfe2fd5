import { describe, expect, it } from 'vitest';
import { LagReadiness } from '../../../daemon/lagReadiness.ts';

/** Samples of one table's lag at fake times: [time ms, lag ms]. */
function observeAll(lag: LagReadiness, samples: readonly [number, number][]): boolean[] {
  return samples.map(([now, lagMs]) => {
    lag.observe('users', lagMs, now);
    return lag.laggingTables().length === 0;
  });
}

describe('LagReadiness', () => {
  it('is ready while the lag stays at or below maxLagMs', () => {
    const lag = new LagReadiness({ maxLagMs: 1000 });
    expect(observeAll(lag, [[0, 0], [100, 500], [200, 1000]])).toEqual([true, true, true]);
  });

  it('goes not ready over maxLagMs, naming the table and its lag', () => {
    const lag = new LagReadiness({ maxLagMs: 1000 });
    lag.observe('users', 1500, 0);
    lag.observe('orders', 10, 0);
    expect(lag.laggingTables()).toEqual([{ table: 'users', lagMs: 1500, worstLagMs: 1500 }]);
    expect(lag.describe(lag.laggingTables()[0]!)).toMatch(/^table users is behind: its oldest change not yet visible is 1\.5 s old, over daemon\.maxLagMs \(1000 ms\)/);
  });

  it('does not flap: a lag that falls to 0 after each slow step keeps it not ready until it stayed low for recoverAfterMs', () => {
    const lag = new LagReadiness({ maxLagMs: 1000, recoverAfterMs: 5000 });
    // Steps of 1.2 s: the lag climbs past the bound, then drops to 0 as each step applies; ready never comes back.
    const sawtooth: [number, number][] = [];
    for (let t = 0; t < 9600; t += 100) sawtooth.push([t, t % 1200]);
    const readiness = observeAll(lag, sawtooth);
    expect(readiness.slice(readiness.indexOf(false))).not.toContain(true);
    // Then it keeps up: ready again only 5 s after the lag fell below half the bound, not at once.
    expect(observeAll(lag, [[10_000, 0], [12_000, 100], [14_999, 0]])).toEqual([false, false, false]);
    expect(observeAll(lag, [[15_000, 0]])).toEqual([true]);
  });

  it('restarts the recovery wait when the lag climbs over half the bound again', () => {
    const lag = new LagReadiness({ maxLagMs: 1000, recoverAfterMs: 5000 });
    expect(observeAll(lag, [[0, 2000], [1000, 0], [4000, 600], [8000, 0], [12_999, 0], [13_000, 0]])).toEqual([false, false, false, false, false, true]);
  });

  it('never goes not ready with maxLagMs 0', () => {
    const lag = new LagReadiness({ maxLagMs: 0 });
    expect(observeAll(lag, [[0, 1e9]])).toEqual([true]);
  });

  it('says how high the lag went while it is back below the bound but not recovered yet', () => {
    const lag = new LagReadiness({ maxLagMs: 1000 });
    lag.observe('users', 3000, 0);
    lag.observe('users', 0, 100);
    expect(lag.describe(lag.laggingTables()[0]!)).toContain('was up to 3.0 s old (now 0.0 s)');
  });
});
