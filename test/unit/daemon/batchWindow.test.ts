import { EventEmitter } from 'node:events';
import type { TableRefreshCounts } from '../../../daemon/tableSync.ts';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { ChangeMapper } from '../../../daemon/changeMapper.ts';
import type { TableChanges } from '../../../daemon/changeBatch.ts';
import { ChangePipeline } from '../../../daemon/changePipeline.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import type { StepSnapshot } from '../../../daemon/stepSnapshot.ts';
import { FakeSnapshots } from './fakeSnapshots.ts';
import { FakeSyncedTable } from './fakeSyncedTable.ts';

const indexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });
const usersSource = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' };

const REFRESH_MS = 10;
const TICK_MS = 2;

/** A refresh that takes REFRESH_MS of the fake clock. */
class SlowTable extends FakeSyncedTable {
  override async refresh(changes: TableChanges): Promise<TableRefreshCounts> {
    const counts = await super.refresh(changes);
    await new Promise((resolve) => setTimeout(resolve, REFRESH_MS));
    return counts;
  }
}

/** Snapshots whose tick takes TICK_MS; a transaction is visible once it has been pushed. */
class TickingSnapshots extends FakeSnapshots {
  committed = 0n;
  snapshotTimes: number[] = [];
  override async open(): Promise<StepSnapshot> {
    const below = this.committed + 1n;
    this.snapshotTimes.push(performance.now());
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    const snapshot = await super.open();
    return { ...snapshot, isVisible: (xid) => xid < below };
  }
}

const pipelines: ChangePipeline[] = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await Promise.all(pipelines.splice(0).map((pipeline) => pipeline.stop()));
});

/** Starts a pipeline on the fake clock, loads its table, and returns it with the snapshots' open times from then on. */
async function startPipeline(windowMs: number) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  // The daemon reads node:perf_hooks' clock, which fake timers leave alone.
  vi.spyOn(performance, 'now').mockImplementation(() => Date.now());
  const table = new SlowTable('users');
  const snapshots = new TickingSnapshots();
  const events = new EventEmitter<DaemonEvents>();
  const pipeline = new ChangePipeline({
    tables: [table],
    mapper: new ChangeMapper([{ name: 'users', indexes, sources: [usersSource] }]),
    snapshots,
    keyPrefix: 'tc:',
    batchWindowMs: windowMs,
    maxBatchKeys: 100_000,
    events,
    logger: pino({ level: 'silent' }),
  });
  pipelines.push(pipeline);
  pipeline.start('start');
  await vi.advanceTimersByTimeAsync(100);
  expect(table.isLoaded).toBe(true);
  snapshots.snapshotTimes.length = 0;
  const refreshedKeys = () => table.steps.flatMap((step) => (step.kind === 'refresh' ? step.keys : []));
  /** Commits and notifies a change of one key. */
  const change = () => {
    snapshots.committed++;
    const key = Number(snapshots.committed);
    pipeline.push(JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: String(key), ts: Date.now(), c: ['user_id'], k: [[key]] }));
  };
  return { snapshots, refreshedKeys, change };
}

/** The time between consecutive snapshots. */
function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((at, i) => at - times[i]!);
}

describe('daemon.batchWindowMs', () => {
  it('opens at most one step per window while changes keep coming', async () => {
    const { snapshots, refreshedKeys, change } = await startPipeline(50);
    // A change every millisecond for 500 ms: a step's refresh (10 ms) never catches up with the queue.
    for (let t = 0; t < 500; t++) {
      change();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(200);
    expect(refreshedKeys()).toHaveLength(500);
    // Before, the changes a step left queued counted as waiting since that step's start: every window looked over, a step every refresh (10 ms).
    expect(Math.min(...gaps(snapshots.snapshotTimes))).toBeGreaterThanOrEqual(50);
    expect(snapshots.snapshotTimes.length).toBeLessThanOrEqual(11);
  });

  it('lets the first change of an idle table wait one window', async () => {
    const { snapshots, refreshedKeys, change } = await startPipeline(50);
    await vi.advanceTimersByTimeAsync(1_000);
    const arrivedAt = Date.now();
    change();
    await vi.advanceTimersByTimeAsync(100);
    expect(refreshedKeys()).toEqual([1]);
    expect(snapshots.snapshotTimes).toEqual([arrivedAt + 50]);
  });

  it('with no window, steps follow each other as fast as they refresh', async () => {
    const { snapshots, refreshedKeys, change } = await startPipeline(0);
    const firstAt = Date.now();
    for (let t = 0; t < 100; t++) {
      change();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(100);
    expect(refreshedKeys()).toHaveLength(100);
    // The first step opens with the first change; each next one while the step before it refreshes.
    expect(snapshots.snapshotTimes[0]).toBe(firstAt);
    expect(Math.max(...gaps(snapshots.snapshotTimes))).toBeLessThanOrEqual(10);
  });
});
