import { execFile } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, waitForBarrier, type TableReader } from '../../../lib/client/index.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { connectRedis, type RedisConnection } from '../../../daemon/redisConnection.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { PrivateRedisCluster } from '../../support/privateRedisTopology.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, SCHEMA, writeSeedConfig } from './daemonHarness.ts';
import { get, healthUrl, parseMetrics } from './operationsHarness.ts';

/**
 * The daemon and `verify` on a Redis Cluster of 3 masters with a replica
 * each (issue #15): the table lives in its hash tag's slot; a SIGKILLed
 * master of that slot is replaced by its replica while the daemon writes and
 * a reader reads, and the daemon comes back to a table equal to Postgres.
 */

const USERS = 300;
const KEY_PREFIX = 'tc-cluster:';
const tableSlotKey = new TableKeys('users', KEY_PREFIX).meta;
/** Every node requires it (requirepass, masterauth): AUTH works on a cluster. */
const PASSWORD = 'cluster-secret';

let cluster: PrivateRedisCluster;
let db: TestDatabase;
let config: TablecacheConfig;
let configFile: string;
let removeConfig: () => void = () => {};
let client: RedisConnection;
let reader: TableReader<Record<string, unknown>> | undefined;
let daemon: DaemonProcess | undefined;

beforeAll(async () => {
  [cluster, db] = await Promise.all([PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 1, password: PASSWORD }), createTestDatabase('redis_cluster')]);
  await createUsers(db.pool, USERS, 10);
  const written = writeSeedConfig({ postgresUrl: db.url, redisUrl: '', keyPrefix: KEY_PREFIX, channel: 'tc_cluster_test', redis: { url: undefined, cluster: { nodes: cluster.nodeUrls.slice(0, 2) }, password: PASSWORD } });
  ({ config, file: configFile, remove: removeConfig } = written);
  await installConfigTriggers(db.pool, config);
  client = await connectRedis(config.redis, 'cluster-test');
}, 120_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await reader?.close();
  client?.disconnect();
  await cluster?.stop();
  removeConfig();
  await db?.drop();
});

/** `tablecache verify` as an operator runs it: its exit code and output. */
function verifyCli(file = configFile): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.resolve('bin/tablecache.js'), 'verify', '--config', file], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
  });
}

async function readyz(url: string) {
  return (await get(`${url}/readyz`)).body;
}

describe('the daemon on a Redis Cluster', () => {
  it('loads the table into its slot, applies changes, and verify finds it equal (exit 0)', async () => {
    daemon = DaemonProcess.start(configFile);
    const url = await healthUrl(daemon);
    await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 50 });
    reader = await openReader({ timeoutMs: 10_000, redis: client, table: 'users', keyPrefix: KEY_PREFIX });
    expect(await reader.get(7)).toMatchObject({ user_id: 7, user_name: 'User 7' });
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed' WHERE user_id = 7`);
    await waitFor('the rename in the cluster', async () => (await reader!.get(7))?.['user_name'] === 'Renamed');
    const run = await verifyCli();
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toMatch(/users\s+300\s+300\s+0\s+0\s+0\s+equal/);
  });

  it("marks barriers in the table's slot: a reader of replicas that waited for one reads every change before it", async () => {
    await expect(openReader({ timeoutMs: 10_000, cluster: { nodes: cluster.nodeUrls }, table: 'users', keyPrefix: KEY_PREFIX })).rejects.toThrow(/NOAUTH.*Check the user and password/);
    const replicaReader = await openReader<Record<string, unknown>>({ cluster: { nodes: cluster.nodeUrls, password: PASSWORD }, table: 'users', keyPrefix: KEY_PREFIX, readFrom: 'replica' });
    try {
      for (let round = 1; round <= 10; round++) {
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = $1 WHERE user_id = 8`, [`Round ${round}`]);
        const id = await sendBarrier(db.pool, { channel: 'tc_cluster_test' });
        await waitForBarrier(replicaReader, id, { timeoutMs: 20_000 });
        expect((await replicaReader.get(8))?.['user_name']).toBe(`Round ${round}`);
      }
    } finally {
      await replicaReader.close();
    }
  });

  it('places tables on the masters their hash tags choose: the daemon writes them there, readers, barriers and verify find them by the same tags', async () => {
    const prefix = 'tc-placed:';
    const masters = (await cluster.nodes()).filter((node) => node.role === 'master' && !node.failed).map((node) => node.port);
    // As an operator does (docs/redis-key-layout.md, "Placing a table"): the first candidate tag whose slot the chosen master serves.
    const tagOn = async (port: number) => {
      for (let candidate = 0; candidate < 200; candidate++) {
        if ((await cluster.masterPortOf(`{${prefix}hot-${candidate}}`)) === port) return `hot-${candidate}`;
      }
      throw new Error(`no candidate tag lands on master ${port}`);
    };
    const placement = { cities: { master: masters[1]!, tag: await tagOn(masters[1]!) }, names: { master: masters[2]!, tag: await tagOn(masters[2]!) } };
    const placed = writeSeedConfig({
      postgresUrl: db.url, redisUrl: '', keyPrefix: prefix, channel: 'tc_cluster_test',
      redis: { url: undefined, cluster: { nodes: cluster.nodeUrls.slice(0, 2) }, password: PASSWORD },
      tables: {
        cities: { query: `SELECT city_id, name FROM ${SCHEMA}.cities`, primaryKey: 'city_id', sources: { [`${SCHEMA}.cities`]: { key: 'city_id' } }, hashTag: placement.cities.tag },
        names: { query: `SELECT user_id, name FROM ${SCHEMA}.users`, primaryKey: 'user_id', sources: { [`${SCHEMA}.users`]: { key: 'user_id' } }, hashTag: placement.names.tag },
      },
    });
    const placedDaemon = DaemonProcess.start(placed.file);
    const readers: TableReader<Record<string, unknown>>[] = [];
    try {
      const url = await healthUrl(placedDaemon);
      await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 50 });
      for (const [table, { master, tag }] of Object.entries(placement)) {
        // A plain connection to the chosen master: a key of a slot it does not serve would answer MOVED.
        const node = new Redis(master, '127.0.0.1', { password: PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0 });
        await node.connect();
        try {
          const keys = new TableKeys(table, prefix, tag);
          const generation = await node.hget(keys.meta, 'gen');
          expect(generation, `table ${table} on master ${master}`).not.toBeNull();
          expect(await node.hlen(keys.records(Number(generation)))).toBe(table === 'cities' ? 10 : USERS);
        } finally {
          node.disconnect();
        }
        readers.push(await openReader({ timeoutMs: 10_000, cluster: { nodes: cluster.nodeUrls, password: PASSWORD }, table, keyPrefix: prefix, hashTag: tag, readFrom: 'replica' }));
      }
      const [cities, names] = readers as [TableReader<Record<string, unknown>>, TableReader<Record<string, unknown>>];
      expect(await cities.get(3)).toEqual({ city_id: 3, name: 'City 3' });
      // Without the tag a reader looks where the table is not.
      const untagged = await openReader({ timeoutMs: 10_000, redis: client, table: 'cities', keyPrefix: prefix });
      expect((await untagged.info()).loaded).toBe(false);
      await untagged.close();
      await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Placed' WHERE user_id = 9`);
      await db.pool.query(`UPDATE ${SCHEMA}.cities SET name = 'Placed City' WHERE city_id = 4`);
      const id = await sendBarrier(db.pool, { channel: 'tc_cluster_test' });
      await waitForBarrier(readers, id, { timeoutMs: 20_000 });
      expect((await names.get(9))?.['name']).toBe('Placed');
      expect((await cities.get(4))?.['name']).toBe('Placed City');
      const verified = await verifyCache(placed.config);
      expect(verified.map(({ table, equal }) => ({ table, equal }))).toEqual(['users', 'cities', 'names'].map((table) => ({ table, equal: true })));
    } finally {
      await Promise.all(readers.map((reader) => reader.close()));
      await placedDaemon.stop();
      placed.remove();
      await db.pool.query(`UPDATE ${SCHEMA}.cities SET name = 'City 4' WHERE city_id = 4`);
    }
  });

  it('refuses redis.url naming a cluster node with the setting to use instead (exit 2), never a MOVED reported as a difference', async () => {
    const single = writeSeedConfig({ postgresUrl: db.url, redisUrl: cluster.nodeUrls[0]!, keyPrefix: KEY_PREFIX, channel: 'tc_cluster_test', redis: { password: PASSWORD } });
    try {
      const run = await verifyCli(single.file);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('is a node of a Redis Cluster');
      expect(run.stderr).toContain('redis.cluster: { nodes:');
    } finally {
      single.remove();
    }
  });

  it('survives a SIGKILL of the master holding the table while it writes and a reader reads: not ready meanwhile, then equal to Postgres', async () => {
    const url = await healthUrl(daemon!);
    const notReady: string[][] = [];
    let stop = false;
    let renames = 0;
    const writer = (async () => {
      while (!stop) {
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Write ' || $1::int WHERE user_id = 1 + $1::int % ${USERS}`, [renames++]);
      }
    })();
    const watcher = (async () => {
      while (!stop) {
        const body = await readyz(url).catch(() => undefined);
        if (body?.ready === false) notReady.push(body.reasons ?? []);
      }
    })();
    let readErrors = 0;
    const reads = (async () => {
      while (!stop) await reader!.get(1 + (renames % USERS)).catch(() => readErrors++);
    })();
    try {
      await waitFor('a few writes before the kill', () => renames > 20);
      const { killedPort, promotedPort } = await cluster.killMasterOf(tableSlotKey);
      expect(promotedPort).not.toBe(killedPort);
      await waitFor('/readyz to have been not ready', () => notReady.length > 0, { timeoutMs: 30_000 });
      const before = renames;
      await waitFor('writes after the failover', () => renames > before + 20, { timeoutMs: 30_000 });
    } finally {
      stop = true;
      await Promise.all([writer, watcher, reads]);
    }
    await waitFor('/readyz ready again', async () => (await readyz(url)).ready === true, { timeoutMs: 60_000, intervalMs: 100 });
    const results = await waitFor('verify to find the table equal', async () => {
      const [result] = await verifyCache(config);
      return result?.equal ? result : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    expect(results).toMatchObject({ equal: true, postgresRecords: USERS, redisRecords: USERS });
    expect(notReady.flat().join(' ')).toMatch(/master 127\.0\.0\.1:\d+ of Redis Cluster at .* does not answer/);
    // The promoted replica may lack the last acknowledged refreshes: the daemon reloaded rather than trust it.
    const metrics = parseMetrics((await get(`${url}/metrics`)).text);
    expect(metrics.get('tablecache_reloads_total{table="users",reason="redis_failover"}')).toBeGreaterThanOrEqual(1);
    expect(daemon!.child.exitCode).toBeNull();
  }, 120_000);
});
