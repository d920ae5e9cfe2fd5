import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { cityScorer as scorer, type City } from '../../support/cityRecords.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { PrivateRedisSentinel } from '../../support/privateRedisTopology.ts';
import { waitFor } from '../../support/waitFor.ts';
import { readCommandCalls } from '../../support/redisReadCalls.ts';

// openReader({ sentinel, readFrom }) on a primary with two replicas behind
// three sentinels (private ports): readFrom decides which node the reads reach.

const prefix = 'tcsentinel:';
const table = 'cities';

let topology: PrivateRedisSentinel;
let storage: RedisStorageTable<City>;

/** A short-lived connection to the node on `port`. */
async function onNode<T>(port: number, use: (node: Redis) => Promise<T>): Promise<T> {
  const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  await node.connect();
  try {
    return await use(node);
  } finally {
    node.disconnect();
  }
}

/** `INFO commandstats` calls of the reader's read commands on the node on `port`. */
async function readCalls(port: number): Promise<number> {
  return onNode(port, async (node) => readCommandCalls(await node.info('commandstats')));
}

async function readsPerNode(read: () => Promise<unknown>, times: number): Promise<Map<number, number>> {
  const before = new Map(await Promise.all(topology.dataPorts.map(async (port) => [port, await readCalls(port)] as const)));
  for (let i = 0; i < times; i++) await read();
  return new Map(await Promise.all(topology.dataPorts.map(async (port) => [port, (await readCalls(port)) - before.get(port)!] as const)));
}

beforeAll(async () => {
  topology = await PrivateRedisSentinel.start({ replicas: 2 });
  storage = await RedisStorageTable.open<City>({ url: `redis://127.0.0.1:${await topology.primaryPort()}`, table, keyPrefix: prefix, scorer });
  await storage.clear();
  await storage.putRecords([{ city_id: 1, name: 'one' }]);
  await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
  // A replica's first sync may start seconds later (repl-diskless-sync-delay): readers must find the table there.
  const meta = new TableKeys(table, prefix).meta;
  for (const port of topology.dataPorts) {
    await waitFor(`the load on node ${port}`, async () => (await onNode(port, (node) => node.exists(meta))) === 1, { timeoutMs: 30_000 });
  }
}, 90_000);

afterAll(async () => {
  await storage?.close();
  await topology?.stop();
});

it("reads a replica the sentinels name with readFrom 'replica', and the primary by default", async () => {
  const primaryPort = await topology.primaryPort();
  const sentinel = { sentinels: topology.sentinelUrls, name: topology.name };
  const replicaReader = await openReader<City>({ timeoutMs: 10_000, sentinel, table, keyPrefix: prefix, readFrom: 'replica' });
  const fromReplica = await readsPerNode(() => replicaReader.get(1), 10);
  expect(fromReplica.get(primaryPort)).toBe(0);
  expect([...fromReplica.values()].reduce((sum, calls) => sum + calls, 0)).toBeGreaterThanOrEqual(10);
  await replicaReader.close();

  const primaryReader = await openReader<City>({ timeoutMs: 10_000, sentinel, table, keyPrefix: prefix });
  const fromPrimary = await readsPerNode(() => primaryReader.get(1), 10);
  expect(fromPrimary.get(primaryPort)).toBeGreaterThanOrEqual(10);
  await primaryReader.close();
});
