import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableBarrierMarkKey, waitForBarrier } from '../../../lib/client/barrier.ts';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { cityScorer as scorer, type City } from '../../support/cityRecords.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { readerFunctionLibrary } from '../../../lib/redis/scripts/readerScripts.ts';
import { BarrierTracker } from '../../../daemon/barrierTracker.ts';
import { PrivateRedisCluster } from '../../support/privateRedisTopology.ts';
import { describeStorageConformance } from '../../support/storageConformance.ts';
import { waitFor } from '../../support/waitFor.ts';

// The library and the reader on a real local Redis Cluster (3 masters, 3
// replicas, private ports): the writer's scripts, the function library on
// every master, reads that reach replicas, and barriers in a table's slot.

const city = (city_id: number): City => ({ city_id, name: `City ${city_id}` });
const prefix = 'tccluster:';

let topology: PrivateRedisCluster;
let cluster: Cluster;
let tableNumber = 0;

/** A short-lived connection to one node. */
async function onNode<T>(port: number, use: (node: Redis) => Promise<T>): Promise<T> {
  const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  await node.connect();
  try {
    return await use(node);
  } finally {
    node.disconnect();
  }
}

/** `INFO commandstats` calls of `command` on the node on `port`. */
async function calls(port: number, command: string): Promise<number> {
  const info = await onNode(port, (node) => node.info('commandstats'));
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

/** The ports of the master and the replica serving `key`'s slot. */
async function nodesOf(key: string): Promise<{ master: number; replica: number }> {
  const master = await topology.masterPortOf(key);
  const replica = await waitFor(`a replica of master ${master}`, async () => {
    for (const port of topology.ports.filter((p) => p !== master)) {
      const role = (await onNode(port, (node) => node.call('role'))) as [string, string, number];
      if (role[0] === 'slave' && Number(role[2]) === master) return port;
    }
    return undefined;
  });
  return { master, replica };
}

async function loadedTable(options: { leaseTtlMs?: number } = {}): Promise<RedisStorageTable<City>> {
  const storage = await RedisStorageTable.open<City>({ redis: cluster, table: `cities${++tableNumber}`, keyPrefix: prefix, scorer, ...options });
  await storage.clear();
  await storage.putRecords([city(1), city(2), city(3)]);
  await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
  return storage;
}

/** Resolves once the node on `port` holds `key` (replication has caught up to it). */
async function replicated(port: number, key: string): Promise<void> {
  await waitFor(`${key} on replica ${port}`, () => onNode(port, async (node) => (await node.call('readonly'), (await node.exists(key)) === 1)));
}

beforeAll(async () => {
  topology = await PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 1 });
  cluster = new Cluster(topology.nodeUrls.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })), { lazyConnect: true });
  await cluster.connect();
}, 90_000);

afterAll(async () => {
  cluster?.disconnect();
  await topology?.stop();
});

describeStorageConformance('RedisStorageTable on a Redis Cluster', async (conformanceScorer) => {
  const storage = await RedisStorageTable.open({ redis: cluster, table: `conformance${++tableNumber}`, keyPrefix: prefix, scorer: conformanceScorer });
  return { storage, cleanup: () => storage.close() };
});

describe('the reader function library on a cluster', () => {
  it('is loaded on every master, and again on a master that lost it (FUNCTION FLUSH)', async () => {
    const storage = await loadedTable({ leaseTtlMs: 1_000 });
    const masters = (await topology.nodes()).filter((node) => node.role === 'master' && !node.failed).map((node) => node.port);
    expect(masters).toHaveLength(3);
    const listed = (port: number) => onNode(port, async (node) => ((await node.call('function', 'list', 'libraryname', readerFunctionLibrary.name)) as unknown[]).length);
    for (const port of masters) expect(await listed(port)).toBe(1);
    await onNode(masters[1]!, (node) => node.call('function', 'flush'));
    expect(await listed(masters[1]!)).toBe(0);
    // The writer checks once per lease lifetime (1 s here).
    await waitFor('the library to be loaded again', async () => (await listed(masters[1]!)) === 1);
    await storage.close();
  });
});

describe('reading replicas', () => {
  it("sends every read of readFrom 'replica' to a replica of the table's slot, with functions and with the script fallback", async () => {
    const storage = await loadedTable();
    const meta = new TableKeys(storage.name, prefix).meta;
    const { master, replica } = await nodesOf(meta);
    await storage.close();
    await replicated(replica, meta);
    const reader = await openReader<City>({ timeoutMs: 10_000, cluster: { nodes: topology.nodeUrls }, table: storage.name, keyPrefix: prefix, readFrom: 'replica' });
    const before = { replica: await calls(replica, 'fcall_ro'), master: await calls(master, 'fcall_ro') };
    for (let i = 0; i < 20; i++) expect(await reader.get(2)).toEqual(city(2));
    expect(await calls(replica, 'fcall_ro')).toBeGreaterThanOrEqual(before.replica + 20);
    expect(await calls(master, 'fcall_ro')).toBe(before.master);

    // Without the library (flushed on the master, which replicates the flush), reads fall back to
    // EVALSHA_RO, and on NOSCRIPT to EVAL_RO, on the replica too.
    await onNode(master, (node) => node.call('function', 'flush'));
    await waitFor('the flush to reach the replica', () =>
      onNode(replica, async (node) => ((await node.call('function', 'list')) as unknown[]).length === 0),
    );
    await onNode(replica, (node) => node.call('script', 'flush'));
    const scripts = { evalshaRo: await calls(replica, 'evalsha_ro'), evalRo: await calls(replica, 'eval_ro'), masterEvalRo: await calls(master, 'eval_ro') };
    expect(await reader.getMany([1, 3])).toEqual([city(1), city(3)]);
    expect(await reader.get(2)).toEqual(city(2));
    expect(await calls(replica, 'evalsha_ro')).toBeGreaterThanOrEqual(scripts.evalshaRo + 2);
    expect(await calls(replica, 'eval_ro')).toBeGreaterThanOrEqual(scripts.evalRo + 1);
    expect(await calls(master, 'eval_ro')).toBe(scripts.masterEvalRo);
    await reader.close();
  });

  it("reads a cluster replica's URL with readFrom 'replica' (READONLY); without it the node answers MOVED", async () => {
    const storage = await loadedTable();
    const meta = new TableKeys(storage.name, prefix).meta;
    const { replica } = await nodesOf(meta);
    await storage.close();
    await replicated(replica, meta);
    const url = `redis://127.0.0.1:${replica}`;
    const reader = await openReader<City>({ timeoutMs: 10_000, url, table: storage.name, keyPrefix: prefix, readFrom: 'replica' });
    expect(await reader.getMany([1, 2])).toEqual([city(1), city(2)]);
    await reader.close();
    await expect(openReader<City>({ timeoutMs: 10_000, url, table: storage.name, keyPrefix: prefix })).rejects.toThrow(/MOVED/);
  });
});

describe('barriers on a cluster', () => {
  it("marks each table in its own slot, and waitForBarrier(reader) waits on the reader's replica", async () => {
    const storage = await loadedTable();
    await storage.close();
    const markKey = tableBarrierMarkKey(prefix, storage.name, 'b1');
    expect(await topology.slotOf(markKey)).toBe(await topology.slotOf(new TableKeys(storage.name, prefix).meta));
    const errors: unknown[] = [];
    const tracker = new BarrierTracker({ tables: [storage.name, 'other'], redis: cluster, keyPrefix: prefix, onError: (error) => errors.push(error) });
    tracker.arrive('b1');
    await tracker.reached(storage.name, ['b1']);
    expect(errors).toEqual([]);
    const reader = await openReader<City>({ timeoutMs: 10_000, cluster: { nodes: topology.nodeUrls }, table: storage.name, keyPrefix: prefix, readFrom: 'replica' });
    // Reached for this table, though not yet for "other": the global mark waits for both.
    await waitForBarrier(reader, 'b1', { timeoutMs: 10_000 });
    await expect(waitForBarrier(cluster, 'b1', { keyPrefix: prefix, timeoutMs: 50 })).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
    await tracker.reached('other', ['b1']);
    await waitForBarrier(cluster, 'b1', { keyPrefix: prefix, timeoutMs: 10_000 });
    await reader.close();
  });
});

// Last: it kills a master, which the cases above must not see.
describe('a failover under a reader', () => {
  it('reads again, without reopening, once a replica has taken over the master of its slot', async () => {
    const storage = await loadedTable();
    const meta = new TableKeys(storage.name, prefix).meta;
    const { replica } = await nodesOf(meta);
    await storage.close();
    await replicated(replica, meta);
    const readers = await Promise.all(
      (['primary', 'replica'] as const).map((readFrom) => openReader<City>({ timeoutMs: 10_000, cluster: { nodes: topology.nodeUrls }, table: storage.name, keyPrefix: prefix, readFrom })),
    );
    for (const reader of readers) expect(await reader.get(3)).toEqual(city(3));
    const { promotedPort } = await topology.killMasterOf(meta);
    expect(promotedPort).toBe(replica);
    for (const reader of readers) {
      await waitFor('a read after the failover', async () => (await reader.get(3))?.name === 'City 3', { timeoutMs: 30_000 });
      await reader.close();
    }
  });
});
