import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { pino } from 'pino';
import { ChangeMapper } from '../../../daemon/changeMapper.ts';
import { ChangePipeline, type ChangePipelineOptions } from '../../../daemon/changePipeline.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { deferred } from '../core/deferred.ts';
import { waitFor } from '../../support/waitFor.ts';
import { FakeSnapshots } from './fakeSnapshots.ts';
import { FakeBarrierRedis } from './fakeBarrierRedis.ts';
import { FakeSyncedTable } from './fakeSyncedTable.ts';

const indexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });
const usersSource = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' };

function change(...keys: number[]): string {
  return changeIn(1n, ...keys);
}

function changeIn(xid: bigint, ...keys: number[]): string {
  return JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: String(xid), ts: Date.now(), c: ['user_id'], k: keys.map((key) => [key]) });
}

function coarse(): string {
  return JSON.stringify({ v: 1, t: 'public.users', op: 'X', xid: '1', ts: Date.now(), reason: 'too_large' });
}

function barrier(id: string): string {
  return JSON.stringify({ v: 1, op: 'B', id });
}

const pipelines: ChangePipeline[] = [];

function startPipeline(overrides: Partial<ChangePipelineOptions> = {}) {
  const table = new FakeSyncedTable('users');
  const redis = new FakeBarrierRedis();
  const events = new EventEmitter<DaemonEvents>();
  const snapshots = new FakeSnapshots();
  const pipeline = new ChangePipeline({
    tables: [table],
    mapper: new ChangeMapper([{ name: 'users', indexes, sources: [usersSource] }]),
    snapshots,
    redis: redis as never,
    keyPrefix: 'tc:',
    batchWindowMs: 0,
    maxBatchKeys: 1000,
    events,
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
  pipelines.push(pipeline);
  pipeline.start('start');
  return { table, redis, events, pipeline, snapshots };
}

afterEach(async () => {
  await Promise.all(pipelines.splice(0).map((pipeline) => pipeline.stop()));
});

describe('ChangePipeline stopping', () => {
  it('finishes a step whose cut was still being proven when the stop came, instead of dropping its changes', async () => {
    const { table, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    const proof = deferred();
    snapshots.proof = proof.promise;
    const openedBefore = snapshots.opened;
    pipeline.push(change(1));
    await waitFor("the step's snapshot to be opened", () => snapshots.opened === openedBefore + 1);
    const stopped = pipeline.stop();
    proof.resolve();
    await stopped;
    expect(table.steps.slice(1)).toEqual([{ kind: 'refresh', keys: [1] }]);
  });

  it('finishes the step opened beside the one in flight when the stop came', async () => {
    const { table, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(1));
    await waitFor('the first refresh to start', () => table.steps.length === 2);
    const openedBefore = snapshots.opened;
    pipeline.push(change(2));
    await waitFor('the next step to be opened beside it', () => snapshots.opened === openedBefore + 1);
    const stopped = pipeline.stop();
    table.hold.resolve();
    table.hold = null;
    await stopped;
    expect(table.steps.slice(1)).toEqual([
      { kind: 'refresh', keys: [1] },
      { kind: 'refresh', keys: [2] },
    ]);
  });
});

describe('ChangePipeline', () => {
  it('loads every table first, with notifications that arrive meanwhile applied after the load', async () => {
    const { table, pipeline } = startPipeline();
    table.hold = deferred();
    await waitFor('the load to start', () => table.steps.length === 1);
    pipeline.push(change(1));
    pipeline.push(change(2));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the changes to be refreshed', () => table.steps.length === 2);
    expect(table.steps).toEqual([{ kind: 'reload' }, { kind: 'refresh', keys: [1, 2] }]);
  });

  it('refreshes a key changed five times while a batch was in flight once', async () => {
    const { table, pipeline } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(9));
    await waitFor('the first refresh to start', () => table.steps.length === 2);
    for (let i = 0; i < 5; i++) pipeline.push(change(1, 2));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the second refresh', () => table.steps.length === 3);
    expect(table.steps.slice(1)).toEqual([
      { kind: 'refresh', keys: [9] },
      { kind: 'refresh', keys: [1, 2] },
    ]);
  });

  it('applies a burst of 10,000 changes that arrived during a step in one step', async () => {
    const { table, pipeline } = startPipeline({ maxBatchKeys: 4000 });
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(0));
    await waitFor('the first refresh to start', () => table.steps.length === 2);
    for (let key = 1; key <= 10_000; key++) pipeline.push(change(key));
    table.hold.resolve();
    table.hold = null;
    await waitFor('every key refreshed', () => table.steps.flatMap((step) => (step.kind === 'refresh' ? step.keys : [])).length === 10_001);
    expect(table.steps.filter((step) => step.kind === 'refresh')).toHaveLength(2);
  });

  it('opens the next step while a refresh applies, and publishes it only after that refresh', async () => {
    const { table, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(1));
    await waitFor('the first refresh to start', () => table.steps.length === 2);
    const opened = snapshots.opened;
    pipeline.push(change(2));
    await waitFor('the next snapshot to be opened during the refresh', () => snapshots.opened === opened + 1);
    expect(table.steps).toHaveLength(2);
    table.hold.resolve();
    table.hold = null;
    await waitFor('the second refresh', () => table.steps.length === 3);
    expect(table.steps.slice(1)).toEqual([
      { kind: 'refresh', keys: [1] },
      { kind: 'refresh', keys: [2] },
    ]);
  });

  it('abandons the step opened during a refresh that fails: its changes come with the reload, never before it', async () => {
    const { table, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    table.failNext = true;
    pipeline.push(change(1));
    await waitFor('the first refresh to start', () => table.steps.length === 2);
    const opened = snapshots.opened;
    pipeline.push(change(2));
    await waitFor('the next snapshot to be opened during the refresh', () => snapshots.opened === opened + 1);
    table.hold.resolve();
    table.hold = null;
    await waitFor('the reload after the failure', () => table.isLoaded && table.steps.length === 3);
    pipeline.push(change(3));
    await waitFor('a refresh after the reload', () => table.steps.length === 4);
    expect(table.steps.slice(1)).toEqual([{ kind: 'refresh', keys: [1] }, { kind: 'reload' }, { kind: 'refresh', keys: [3] }]);
  });

  it('leaves the changes of a transaction not visible in the step snapshot for the next step', async () => {
    const { table, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    // Transaction 7 commits after the snapshot was taken, and its notification arrives before the tick.
    snapshots.visibleBelow = 7n;
    snapshots.onOpen = () => {
      snapshots.onOpen = null;
      pipeline.push(changeIn(7n, 2, 3));
      // The next step's snapshot includes it.
      snapshots.visibleBelow = 8n;
    };
    pipeline.push(changeIn(5n, 1));
    await waitFor('two refreshes', () => table.steps.length >= 3);
    expect(table.steps.slice(1)).toEqual([
      { kind: 'refresh', keys: [1] },
      { kind: 'refresh', keys: [2, 3] },
    ]);
  });

  it('marks a barrier that arrived with the tick only after the next step', async () => {
    const { table, redis, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    snapshots.visibleBelow = 7n;
    snapshots.onOpen = () => {
      snapshots.onOpen = null;
      pipeline.push(changeIn(7n, 2));
      pipeline.push(barrier('after-7'));
      snapshots.visibleBelow = 8n;
    };
    pipeline.push(changeIn(5n, 1));
    await waitFor('the barrier', () => redis.marked.length === 1);
    expect(table.steps.slice(1)).toEqual([
      { kind: 'refresh', keys: [1] },
      { kind: 'refresh', keys: [2] },
    ]);
  });

  it('follows several coarse changes that arrive during a reload with one more reload, not one each', async () => {
    const { table, pipeline } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(coarse());
    await waitFor('the reload to start', () => table.steps.length === 2);
    for (let i = 0; i < 5; i++) pipeline.push(coarse());
    pipeline.push(change(3));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the second reload', () => table.steps.length === 3);
    await pipeline.stop();
    expect(table.steps).toEqual([{ kind: 'reload' }, { kind: 'reload' }, { kind: 'reload' }]);
  });

  it('marks a barrier only once every change received before it is applied', async () => {
    const { table, redis, pipeline } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(1));
    await waitFor('the refresh to start', () => table.steps.length === 2);
    pipeline.push(change(2));
    pipeline.push(barrier('after-2'));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the barrier', () => redis.marked.length === 1);
    expect(redis.marked).toEqual(['after-2']);
    expect(table.steps.at(-1)).toEqual({ kind: 'refresh', keys: [2] });
  });

  it('reloads a table whose refresh failed, and marks the barriers (and ends the lag) of that batch only after the reload', async () => {
    const { table, redis, pipeline, events } = startPipeline();
    const changeTimes: number[][] = [];
    events.on('batchApplied', (event) => changeTimes.push([...event.changeTimes]));
    await waitFor('the load', () => table.isLoaded);
    table.failNext = true;
    pipeline.push(change(1));
    pipeline.push(barrier('b1'));
    await waitFor('the reload after the failure', () => table.steps.length === 3 && table.isLoaded);
    expect(table.steps.slice(1)).toEqual([{ kind: 'refresh', keys: [1] }, { kind: 'reload' }]);
    await waitFor('the barrier', () => redis.marked.length === 1);
    // The load, the failed refresh (nothing visible), the reload that made change 1 visible.
    await waitFor('the reload step', () => changeTimes.length === 3);
    expect(changeTimes.map((times) => times.length)).toEqual([0, 0, 1]);
  });

  it('retries a step whose snapshot could not be opened, with its changes, reloads and barriers', async () => {
    const { table, redis, pipeline, snapshots } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    snapshots.refuse = 2;
    pipeline.push(change(4));
    pipeline.push(barrier('b4'));
    pipeline.requestReload(null, 'a test asks', 'storage_lost');
    await waitFor('the barrier', () => redis.marked.length === 1);
    expect(snapshots.refuse).toBe(0);
    expect(table.steps.slice(1)).toEqual([{ kind: 'reload' }]);
    expect(redis.marked).toEqual(['b4']);
  });

  it('retries a failed reload as that reload: a storage_lost reload that needed a retry completes as storage_lost and failure', async () => {
    const { table, pipeline, events } = startPipeline();
    const reloaded: DaemonEvents['reloaded'][0][] = [];
    events.on('reloaded', (event) => reloaded.push(event));
    await waitFor('the load', () => table.isLoaded);
    table.failNext = true;
    pipeline.requestReload(null, 'Redis lost the published data', 'storage_lost');
    await waitFor('the retried reload', () => reloaded.length === 1);
    expect(table.steps.slice(1)).toEqual([{ kind: 'reload' }, { kind: 'reload' }]);
    expect([...reloaded[0]!.kinds].sort()).toEqual(['failure', 'storage_lost']);
    expect(reloaded[0]!.reasons).toContain('Redis lost the published data');
  });

  it('retries a failed refresh with a reload of kind failure only', async () => {
    const { table, pipeline, events } = startPipeline();
    const reloaded: DaemonEvents['reloaded'][0][] = [];
    events.on('reloaded', (event) => reloaded.push(event));
    await waitFor('the load', () => table.isLoaded);
    table.failNext = true;
    pipeline.push(change(1));
    await waitFor('the reload after the failure', () => reloaded.length === 1);
    expect(reloaded[0]!.kinds).toEqual(['failure']);
  });

  it('reloads a table whose data Redis lost', async () => {
    const { table } = startPipeline({ storageCheckIntervalMs: 10 });
    await waitFor('the load', () => table.isLoaded);
    table.intact = false;
    await waitFor('a reload', () => table.steps.length >= 2);
    table.intact = true;
    expect(table.steps[1]).toEqual({ kind: 'reload' });
  });

  it('replaces a queue that grew past maxQueuedKeys by one reload of every table', async () => {
    const { table, pipeline } = startPipeline({ maxBatchKeys: 10, maxQueuedKeys: 100 });
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(0));
    await waitFor('the refresh to start', () => table.steps.length === 2);
    for (let key = 1; key <= 500; key++) pipeline.push(change(key));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the reload', () => table.steps.length >= 3);
    await pipeline.stop();
    expect(table.steps.slice(2)).toEqual([{ kind: 'reload' }]);
  });

  it('keeps the lag of changes a collapse dropped until the reload that replaces them is applied', async () => {
    // Keys per source high enough that the queue bound (collapseIfBehind), not the flood bound, drops the changes.
    const { table, pipeline, events } = startPipeline({ maxBatchKeys: 10, maxQueuedKeys: 100, maxQueuedKeysPerTable: 10_000 });
    const applied: { notifications: number; changeTimes: number }[] = [];
    events.on('batchApplied', (event) => applied.push({ notifications: event.notifications, changeTimes: event.changeTimes.length }));
    const age = () => pipeline.oldestPendingChangeAges(performance.now() + 1).get('users');
    const load = deferred();
    const reload = deferred();
    table.hold = load;
    try {
      await waitFor('the load to start', () => table.steps.length === 1);
      for (let key = 1; key <= 101; key++) pipeline.push(change(key));
      expect(pipeline.queuedKeys().get('users')).toBe(0);
      expect(age()).toBeGreaterThan(0);
      table.hold = reload;
      load.resolve();
      await waitFor('the reload that replaces the dropped changes', () => table.steps.length === 2);
      expect(table.steps[1]).toEqual({ kind: 'reload' });
      expect(age()).toBeGreaterThan(0);
    } finally {
      // A failed expectation must not leave a step held (the pipeline's stop would wait for it).
      table.hold = null;
      load.resolve();
      reload.resolve();
    }
    await waitFor('the reload to be applied', () => applied.length === 2);
    expect(age()).toBe(0);
    expect(applied[1]).toEqual({ notifications: 0, changeTimes: 101 });
  });

  it('counts a malformed payload, reports it cut short, and goes on', async () => {
    const { table, pipeline, events } = startPipeline();
    const malformed: string[] = [];
    events.on('malformedPayload', (event) => malformed.push(event.excerpt));
    await waitFor('the load', () => table.isLoaded);
    pipeline.push(`{${'x'.repeat(1000)}`);
    pipeline.push(change(4));
    await waitFor('the refresh', () => table.steps.length === 2);
    expect(malformed).toHaveLength(1);
    expect(malformed[0]!.length).toBeLessThanOrEqual(201);
  });
});
