import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ChangeMapper } from '../../../daemon/changeMapper.ts';
import { ChangePipeline, type ChangePipelineOptions } from '../../../daemon/changePipeline.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { deferred } from '../core/deferred.ts';
import { waitFor } from '../../support/waitFor.ts';
import { FakeSnapshots } from './fakeSnapshots.ts';
import { FakeBarrierRedis } from './fakeBarrierRedis.ts';
import { FakeSyncedTable, type TableStep } from './fakeSyncedTable.ts';

type Step = TableStep | { kind: 'mark'; ids: string[] };

const indexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });
const usersSource = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' };
const change = (...keys: number[]) => JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: '1', ts: Date.now(), c: ['user_id'], k: keys.map((key) => [key]) });
const coarse = (ts = Date.now()) => JSON.stringify({ v: 1, t: 'public.users', op: 'X', xid: '1', ts, reason: 'too_large' });
const barrier = (id: string) => JSON.stringify({ v: 1, op: 'B', id });

const pipelines: ChangePipeline[] = [];
const tables: FakeSyncedTable[] = [];

function startPipeline(overrides: Partial<ChangePipelineOptions> = {}) {
  const log: Step[] = [];
  const table = new FakeSyncedTable('users', (step) => log.push(step));
  tables.push(table);
  const events = new EventEmitter<DaemonEvents>();
  const reloadKinds: string[][] = [];
  events.on('reloaded', ({ kinds }) => reloadKinds.push([...kinds]));
  /** Per `batchApplied` event: the change times it reports, and the number of reloads applied by then. */
  const applied: { changeTimes: number[]; reloads: number }[] = [];
  events.on('batchApplied', ({ changeTimes }) => applied.push({ changeTimes: [...changeTimes], reloads: reloads(log) }));
  const pipeline = new ChangePipeline({
    tables: [table],
    mapper: new ChangeMapper([{ name: 'users', indexes, sources: [usersSource] }]),
    snapshots: new FakeSnapshots(),
    redis: new FakeBarrierRedis((ids) => log.push({ kind: 'mark', ids })) as never,
    keyPrefix: 'tc:',
    batchWindowMs: 0,
    maxBatchKeys: 1000,
    events,
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
  pipelines.push(pipeline);
  pipeline.start('start');
  return { table, log, pipeline, reloadKinds, applied };
}

const reloads = (log: Step[]) => log.filter((step) => step.kind === 'reload').length;

afterEach(async () => {
  // A failed assertion must not leave a step held, or stop() would wait for it.
  for (const table of tables.splice(0)) table.release();
  await Promise.all(pipelines.splice(0).map((pipeline) => pipeline.stop()));
});

describe('ChangePipeline with minReloadIntervalMs', () => {
  it('coalesces 50 coarse payloads within the interval into one deferred reload, and holds a later barrier until it is applied', async () => {
    const { table, log, pipeline } = startPipeline({ minReloadIntervalMs: 300 });
    await waitFor('the load', () => table.isLoaded);
    for (let i = 0; i < 50; i++) pipeline.push(coarse());
    pipeline.push(barrier('after-the-flood'));
    await waitFor('the barrier', () => log.some((step) => step.kind === 'mark'));
    // The start's load, then exactly one reload for all 50, and only then the barrier.
    expect(log).toEqual([{ kind: 'reload' }, { kind: 'reload' }, { kind: 'mark', ids: ['after-the-flood'] }]);
  });

  it('holds a table at its last step while its reload is deferred (refreshing keys would publish part of a transaction), then reloads', async () => {
    const { table, log, pipeline, reloadKinds, applied } = startPipeline({ minReloadIntervalMs: 1500 });
    // While the start's load runs, a reload is certainly within the interval after it: the coarse payload is deferred.
    table.hold = deferred();
    await waitFor('the load to start', () => log.length === 1);
    pipeline.push(coarse(1_000));
    pipeline.push(change(5));
    table.hold.resolve();
    table.hold = null;
    await waitFor('the deferred reload', () => reloads(log) === 2);
    // Key 5 is never refreshed on its own: the deferred reload, in a later snapshot, holds it.
    expect(log).toEqual([{ kind: 'reload' }, { kind: 'reload' }]);
    await waitFor('the reload event', () => reloadKinds.length === 1);
    expect(reloadKinds).toEqual([['bulk_change']]);
    // The held step made neither change visible: the lag histogram gets them with the deferred reload, not before.
    await waitFor("the deferred reload's step", () => applied.some((step) => step.reloads === 2));
    expect(applied.filter((step) => step.reloads < 2).flatMap((step) => step.changeTimes)).toEqual([]);
    expect(applied.flatMap((step) => step.changeTimes)).toEqual([1_000, expect.any(Number)]);
  });

  it('lets a reload that starts for another reason stand for a deferred one, releasing the barriers that waited for it', async () => {
    const { table, log, pipeline } = startPipeline({ minReloadIntervalMs: 60_000 });
    await waitFor('the load', () => table.isLoaded);
    pipeline.push(coarse());
    pipeline.push(barrier('b'));
    pipeline.requestReload(['users'], 'LISTEN was lost', 'listen_lost');
    await waitFor('the barrier', () => log.some((step) => step.kind === 'mark'));
    expect(log).toEqual([{ kind: 'reload' }, { kind: 'reload' }, { kind: 'mark', ids: ['b'] }]);
    expect(pipeline.pendingReloads().size).toBe(0);
  });

  it('without an interval reloads as soon as asked, as before', async () => {
    const { table, log, pipeline } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    pipeline.push(coarse());
    await waitFor('the reload', () => reloads(log) === 2);
  });
});

describe('ChangePipeline and a payload too deeply nested to read', () => {
  it('reloads the tables of the source it names (a deeply nested json key is legal), and skips one that names none', async () => {
    const { table, log, pipeline, reloadKinds } = startPipeline();
    await waitFor('the load', () => table.isLoaded);
    const deepKey = `${'['.repeat(40)}1${']'.repeat(40)}`;
    pipeline.push(`[${deepKey}]`);
    pipeline.push(`{"v":1,"t":"public.users","op":"U","xid":"1","ts":1,"c":["user_id"],"k":[[${deepKey}]]}`);
    await waitFor('the reload', () => reloadKinds.length === 1);
    expect(reloadKinds[0]).toEqual(['unmappable_key']);
    expect(reloads(log)).toBe(2);
  });
});

describe('ChangePipeline under a key flood', () => {
  it('never queues more than maxQueuedKeysPerTable keys for a table: past it they become one reload, shown as a catch-up reason', async () => {
    const { table, log, pipeline, reloadKinds } = startPipeline({ maxBatchKeys: 10, maxQueuedKeysPerTable: 30, minReloadIntervalMs: 0 });
    await waitFor('the load', () => table.isLoaded);
    table.hold = deferred();
    pipeline.push(change(0));
    await waitFor('the refresh to start', () => log.length === 2);
    let mostQueued = 0;
    for (let key = 1; key <= 1000; key++) {
      pipeline.push(change(key));
      mostQueued = Math.max(mostQueued, pipeline.queuedKeys().get('users')!);
    }
    expect(mostQueued).toBeLessThanOrEqual(30);
    expect(pipeline.pendingReloads().get('users')?.kinds).toContain('key_flood');
    table.hold.resolve();
    table.hold = null;
    await waitFor('the reload', () => reloadKinds.length === 1);
    expect(reloadKinds[0]).toContain('key_flood');
    // Only the keys queued after the reload request are refreshed by key, never all 1,000.
    const refreshedAfter = log.slice(2).flatMap((step) => (step.kind === 'refresh' ? step.keys : []));
    expect(refreshedAfter.length).toBeLessThanOrEqual(30);
  });
});
