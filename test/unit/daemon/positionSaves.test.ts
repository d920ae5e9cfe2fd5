import { afterEach, describe, expect, it, vi } from 'vitest';
import { PositionSaves } from '../../../daemon/positionSaves.ts';
import { deferred, settle, type Deferred } from '../core/deferred.ts';

describe('PositionSaves', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('saves one position at a time, in order, and only the newest of those reported while a save runs', async () => {
    const saved: bigint[] = [];
    const holds: Deferred[] = [];
    const saves = new PositionSaves(async (position) => {
      const hold = deferred();
      holds.push(hold);
      await hold.promise;
      saved.push(position);
    }, () => {}, 0);
    saves.report(1n);
    saves.report(2n);
    saves.report(3n);
    expect(holds).toHaveLength(1);
    holds[0]!.resolve();
    await settle();
    expect(holds).toHaveLength(2);
    holds[1]!.resolve();
    await saves.settled();
    expect(saved).toEqual([1n, 3n]);
  });

  it('reports a failed save and goes on with the next position', async () => {
    const errors: unknown[] = [];
    const saved: bigint[] = [];
    const saves = new PositionSaves(async (position) => {
      if (position === 1n) throw new Error('Redis went away');
      saved.push(position);
    }, (error) => errors.push(error));
    saves.report(1n);
    await saves.settled();
    saves.report(2n);
    await saves.settled();
    expect(errors).toHaveLength(1);
    expect(saved).toEqual([2n]);
  });

  it('starts saves at least the interval apart, saving only the newest position reported meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const saved: bigint[] = [];
    const saves = new PositionSaves(async (position) => {
      saved.push(position);
    }, () => {}, 100);
    saves.report(1n);
    await settle();
    saves.report(2n);
    saves.report(3n);
    await settle();
    expect(saved).toEqual([1n]);
    await vi.advanceTimersByTimeAsync(100);
    expect(saved).toEqual([1n, 3n]);
    // A report long after the last save is saved at once.
    await vi.advanceTimersByTimeAsync(100);
    saves.report(4n);
    await settle();
    expect(saved).toEqual([1n, 3n, 4n]);
  });

  it('saves the newest position at once when asked to settle, without waiting out the interval', async () => {
    const saved: bigint[] = [];
    const saves = new PositionSaves(async (position) => {
      saved.push(position);
    }, () => {}, 3_600_000);
    saves.report(1n);
    await settle();
    saves.report(2n);
    await saves.settled();
    expect(saved).toEqual([1n, 2n]);
  });
});
