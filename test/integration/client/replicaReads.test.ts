import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BarrierTimeoutError, waitForBarrier } from '../../../lib/client/barrier.ts';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { cityScorer as scorer, type City } from '../../support/cityRecords.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { BarrierTracker } from '../../../daemon/barrierTracker.ts';
import { LaggingReplica } from '../../support/laggingReplica.ts';
import { PrivateRedis } from '../../support/privateServers.ts';
import { waitFor } from '../../support/waitFor.ts';

// A reader of a replica that lags (its replication held back by a proxy):
// a barrier the primary has reached does not make the replica fresh, and
// waitForBarrier(reader, id) waits on the replica, naming the lag when it
// times out.

const prefix = 'tcreplica:';
const table = 'cities';

let primary: PrivateRedis;
let replica: LaggingReplica;
let redis: Redis;

beforeAll(async () => {
  primary = await PrivateRedis.start();
  redis = new Redis(primary.url, { lazyConnect: true });
  await redis.connect();
  // The replica's first sync starts at once instead of after the default 5 s.
  await redis.config('SET', 'repl-diskless-sync-delay', '0');
  replica = await LaggingReplica.start(primary.port);
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await replica?.stop();
  await primary?.stop();
});

it('waitForBarrier(reader) waits until the replica the reader reads has the barrier, and a timeout names replication lag', async () => {
  const storage = await RedisStorageTable.open<City>({ redis, table, keyPrefix: prefix, scorer });
  await storage.clear();
  await storage.putRecords([{ city_id: 1, name: 'old' }]);
  await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
  const reader = await openReader<City>({ url: replica.url, table, keyPrefix: prefix, readFrom: 'replica' });
  await waitFor('the load on the replica', async () => (await reader.get(1))?.name === 'old');

  replica.hold();
  await storage.scratchPutRecords([{ city_id: 1, name: 'new' }]);
  await storage.scratchMerge();
  const tracker = new BarrierTracker({ tables: [table], redis, keyPrefix: prefix, onError: (error) => expect.fail(String(error)) });
  tracker.arrive('b1');
  await tracker.reached(table, ['b1']);

  // The barrier holds on the primary, but the replica has neither it nor the change (the stale reads).
  await waitForBarrier(redis, 'b1', { keyPrefix: prefix, timeoutMs: 5_000 });
  expect((await reader.get(1))?.name).toBe('old');
  const error = await waitForBarrier(reader, 'b1', { timeoutMs: 200 }).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(BarrierTimeoutError);
  expect(error).toMatchObject({ code: 'TC_TIMEOUT', laggingTables: [table] });
  expect((error as Error).message).toMatch(/replication lag is the likely cause/);

  const waiting = waitForBarrier(reader, 'b1', { timeoutMs: 30_000 });
  replica.release();
  await waiting;
  expect((await reader.get(1))?.name).toBe('new');
  await reader.close();
  await storage.close();
});

it('a reader of the primary whose barrier never comes does not blame replication', async () => {
  const reader = await openReader<City>({ url: primary.url, table, keyPrefix: prefix });
  const error = await waitForBarrier(reader, 'never', { timeoutMs: 50 }).catch((caught: unknown) => caught);
  expect(error).toMatchObject({ code: 'TC_TIMEOUT', laggingTables: [] });
  expect((error as Error).message).not.toMatch(/replication/);
  await reader.close();
});

it('with waitReplicas, the all-tables mark waits until a replica has the table marks (WAIT), and says when none did in time', async () => {
  const behind: string[] = [];
  const tracker = (timeoutMs: number) =>
    new BarrierTracker({ tables: [table], redis, keyPrefix: prefix, onError: (error) => expect.fail(String(error)), waitReplicas: { replicas: 1, timeoutMs }, onReplicasBehind: (detail) => behind.push(detail) });
  replica.hold();
  const held = tracker(100);
  held.arrive('w1');
  await held.reached(table, ['w1']);
  expect(behind).toEqual([expect.stringMatching(/^0 of 1 replicas acknowledged table cities's barrier marks within 100 ms/)]);
  // Marked anyway: a barrier is never held back longer than the timeout.
  await waitForBarrier(redis, 'w1', { keyPrefix: prefix, timeoutMs: 5_000 });
  replica.release();
  const live = tracker(30_000);
  live.arrive('w2');
  await live.reached(table, ['w2']);
  expect(behind).toHaveLength(1);
  // The replica acknowledged the mark, so it has it (and the steps before it) now.
  const reader = await openReader<City>({ url: replica.url, table, keyPrefix: prefix, readFrom: 'replica' });
  await waitForBarrier(reader, 'w2', { timeoutMs: 50 });
  await reader.close();
});
