import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { ChangeMapper } from '../../../daemon/changeMapper.ts';
import { ChangePipeline, type ChangePipelineOptions } from '../../../daemon/changePipeline.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { deferred } from '../core/deferred.ts';
import { waitFor } from '../../support/waitFor.ts';
import { FakeSnapshots } from './fakeSnapshots.ts';
import { FakeBarrierRedis } from './fakeBarrierRedis.ts';
import { FakeSyncedTable } from './fakeSyncedTable.ts';

const usersIndexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });
const ordersIndexes = new KeyColumnIndexes({ query: 'SELECT * FROM orders', primaryKey: ['order_id'] });
const usersSource = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' };
const ordersSource = { name: 'public.orders', schema: 'public', table: 'orders', key: ['order_id'], match: ['order_id'], configPath: 'tables.orders.sources.orders' };

function change(source: 'users' | 'orders', xid: bigint, ...keys: number[]): string {
  const column = source === 'users' ? 'user_id' : 'order_id';
  return JSON.stringify({ v: 1, t: `public.${source}`, op: 'U', xid: String(xid), ts: Date.now(), c: [column], k: keys.map((key) => [key]) });
}

const barrier = (id: string) => JSON.stringify({ v: 1, op: 'B', id });

const pipelines: ChangePipeline[] = [];
const held: FakeSyncedTable[] = [];

function startPipeline(overrides: Partial<ChangePipelineOptions> = {}) {
  const users = new FakeSyncedTable('users');
  const orders = new FakeSyncedTable('orders');
  held.push(users, orders);
  const redis = new FakeBarrierRedis();
  const snapshots = new FakeSnapshots();
  const pipeline = new ChangePipeline({
    tables: [users, orders],
    mapper: new ChangeMapper([
      { name: 'users', indexes: usersIndexes, sources: [usersSource] },
      { name: 'orders', indexes: ordersIndexes, sources: [ordersSource] },
    ]),
    snapshots,
    redis: redis as never,
    keyPrefix: 'tc:',
    batchWindowMs: 0,
    maxBatchKeys: 1000,
    events: new EventEmitter<DaemonEvents>(),
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
  pipelines.push(pipeline);
  pipeline.start('start');
  return { users, orders, redis, pipeline, snapshots };
}

afterEach(async () => {
  for (const table of held.splice(0)) table.release();
  await Promise.all(pipelines.splice(0).map((pipeline) => pipeline.stop()));
});

describe('ChangePipeline with several tables', () => {
  it("refreshes one table's changes while another table's step is still running", async () => {
    const { users, orders, pipeline } = startPipeline();
    await waitFor('both loads', () => users.isLoaded && orders.isLoaded);
    users.hold = deferred();
    pipeline.push(change('users', 5n, 1));
    await waitFor('the users refresh to start', () => users.steps.length === 2);
    pipeline.push(change('orders', 6n, 7));
    pipeline.push(change('orders', 8n, 8));
    await waitFor('the orders refreshes', () => orders.steps.flatMap((step) => (step.kind === 'refresh' ? step.keys : [])).length === 2);
    // The users step never finished meanwhile.
    expect(users.steps).toEqual([{ kind: 'reload' }, { kind: 'refresh', keys: [1] }]);
    expect(pipeline.oldestPendingChangeAges().get('users')).toBeGreaterThan(0);
    expect(pipeline.oldestPendingChangeAges().get('orders')).toBe(0);
    users.hold.resolve();
    users.hold = null;
  });

  it('reports the age of a held table’s oldest change until its step applies it, and 0 after', async () => {
    const { users, pipeline } = startPipeline();
    await waitFor('the load', () => users.isLoaded);
    expect(pipeline.oldestPendingChangeAges().get('users')).toBe(0);
    users.hold = deferred();
    pipeline.push(change('users', 5n, 1));
    await waitFor('the refresh to start', () => users.steps.length === 2);
    const ageWhileHeld = pipeline.oldestPendingChangeAges().get('users')!;
    await waitFor('the age to grow', () => pipeline.oldestPendingChangeAges().get('users')! > ageWhileHeld);
    users.hold.resolve();
    users.hold = null;
    await waitFor('the age to fall to 0', () => pipeline.oldestPendingChangeAges().get('users') === 0);
  });

  it('keeps counting the age of a failed change until the reload after it succeeds', async () => {
    const { users, pipeline } = startPipeline();
    await waitFor('the load', () => users.isLoaded);
    users.failing = 'column "w" does not exist';
    pipeline.push(change('users', 5n, 1));
    await waitFor('the reload after the failure', () => users.steps.some((step, i) => i > 1 && step.kind === 'reload'));
    expect(pipeline.oldestPendingChangeAges().get('users')).toBeGreaterThan(0);
    users.failing = null;
    await waitFor('the recovery', () => users.isLoaded && pipeline.oldestPendingChangeAges().get('users') === 0);
  });

  it('marks a barrier only once every table reached it, and names the failing table beside it meanwhile', async () => {
    const { users, orders, redis, pipeline } = startPipeline();
    await waitFor('both loads', () => users.isLoaded && orders.isLoaded);
    orders.failing = 'canceling statement due to statement timeout';
    pipeline.push(change('orders', 5n, 3));
    pipeline.push(change('users', 6n, 4));
    pipeline.push(barrier('b1'));
    await waitFor('the users refresh', () => users.steps.some((step) => step.kind === 'refresh'));
    // users may be listed too until its own step reports; then b1 waits on orders alone, with the reason.
    const ordersFailing = [{ table: 'orders', reason: 'canceling statement due to statement timeout' }];
    await waitFor('b1 to wait on orders alone', () => JSON.stringify(redis.behind('b1')) === JSON.stringify(ordersFailing));
    expect(pipeline.barrierWaitingOn('b1')).toEqual(['orders']);
    expect(redis.isMarked('b1')).toBe(false);
    // users keeps refreshing while orders fails.
    pipeline.push(change('users', 9n, 5));
    await waitFor('the next users refresh', () => users.steps.some((step) => step.kind === 'refresh' && step.keys.includes(5)));
    expect(redis.isMarked('b1')).toBe(false);
    orders.failing = null;
    await waitFor('the barrier', () => redis.isMarked('b1'));
    expect(pipeline.barrierWaitingOn('b1')).toEqual([]);
  });

  it('names a table whose step is still running (no failure yet) beside a barrier the other tables reached', async () => {
    const { users, orders, redis, pipeline } = startPipeline();
    await waitFor('both loads', () => users.isLoaded && orders.isLoaded);
    users.hold = deferred();
    pipeline.push(change('users', 5n, 1));
    await waitFor('the users refresh to start', () => users.steps.length === 2);
    pipeline.push(barrier('b2'));
    await waitFor('b2 to wait on users alone', () => JSON.stringify(redis.behind('b2')) === JSON.stringify([{ table: 'users' }]));
    users.hold.resolve();
    users.hold = null;
    await waitFor('the barrier', () => redis.isMarked('b2'));
  });

  it('bounds refresh steps by refreshTimeoutMs and reload steps by loadTimeoutMs', async () => {
    const { users, orders, pipeline, snapshots } = startPipeline({ refreshTimeoutMs: 1234, loadTimeoutMs: 56789 });
    await waitFor('both loads', () => users.isLoaded && orders.isLoaded);
    expect(snapshots.limits).toEqual([56789, 56789]);
    pipeline.push(change('users', 5n, 1));
    await waitFor('the refresh', () => users.steps.length === 2);
    await waitFor('its limit', () => snapshots.limits.length === 3);
    expect(snapshots.limits[2]).toBe(1234);
  });

  it('routes a change only to the tables its source feeds', async () => {
    const { users, orders, pipeline } = startPipeline();
    await waitFor('both loads', () => users.isLoaded && orders.isLoaded);
    pipeline.push(change('users', 5n, 1));
    await waitFor('the refresh', () => users.steps.length === 2);
    expect(pipeline.queuedKeys()).toEqual(new Map([['users', 0], ['orders', 0]]));
    expect(orders.steps).toEqual([{ kind: 'reload' }]);
  });
});
