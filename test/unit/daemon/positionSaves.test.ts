import { describe, expect, it } from 'vitest';
import { PositionSaves } from '../../../daemon/positionSaves.ts';
import { deferred, settle, type Deferred } from '../core/deferred.ts';

describe('PositionSaves', () => {
  it('saves one position at a time, in order, and only the newest of those reported while a save runs', async () => {
    const saved: bigint[] = [];
    const holds: Deferred[] = [];
    const saves = new PositionSaves(async (position) => {
      const hold = deferred();
      holds.push(hold);
      await hold.promise;
      saved.push(position);
    }, () => {});
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
});
