import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { connectRedis } from '../../../daemon/redisConnection.ts';
import { cityScorer, type City } from '../../support/cityRecords.ts';
import { PrivateRedisCluster } from '../../support/privateRedisTopology.ts';
import { createTestCertificates, type TestCertificates } from '../../support/tlsRedis.ts';

// TLS in Cluster mode (issue #15): the daemon's connection factory writes,
// and a reader reads, a Redis Cluster whose nodes speak only TLS (clients,
// cluster bus and replication), trusting the test CA.

const KEY_PREFIX = 'tctls:';
const city = (city_id: number): City => ({ city_id, name: `City ${city_id}` });

let certificates: TestCertificates;
let cluster: PrivateRedisCluster;

beforeAll(async () => {
  certificates = createTestCertificates();
  cluster = await PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 0, tls: certificates });
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  certificates?.remove();
});

describe('a Redis Cluster that speaks only TLS', () => {
  it("takes the daemon's writes through its connection factory and serves a reader, both with the CA to trust", async () => {
    const redis = await connectRedis({ cluster: { nodes: [cluster.nodeUrls[0]!] }, keyPrefix: KEY_PREFIX, tls: { caFile: certificates.caFile, rejectUnauthorized: true } }, 'tls-cluster-test');
    try {
      for (const table of ['cities', 'towns']) {
        const storage = await RedisStorageTable.open<City>({ redis, table, keyPrefix: KEY_PREFIX, scorer: cityScorer });
        await storage.clear();
        await storage.putRecords([city(1), city(2), city(3)]);
        await storage.markLoaded({ coverage: { primary_key: [Interval.everything()] } });
        await storage.close();
      }
      // The two tables' slots are served by different masters: the reader follows the slot map over TLS.
      expect(await cluster.masterPortOf(`{${KEY_PREFIX}cities}`)).not.toBe(await cluster.masterPortOf(`{${KEY_PREFIX}towns}`));
      for (const table of ['cities', 'towns']) {
        await using reader = await openReader<City>({ timeoutMs: 10_000, cluster: { nodes: [cluster.nodeUrls[1]!] }, table, keyPrefix: KEY_PREFIX, tls: { ca: readFileSync(certificates.caFile) } });
        expect(await reader.get(2)).toEqual(city(2));
        expect(await reader.range('primary_key', 1, 4)).toEqual([city(1), city(2), city(3)]);
      }
      // Without the CA the node's certificate is refused: no silent fallback to trusting it. (ioredis's Cluster
      // reports the failed handshake only as "Connection is closed", so the message cannot name the certificate.)
      await expect(openReader({ cluster: { nodes: [cluster.nodeUrls[1]!] }, table: 'cities', keyPrefix: KEY_PREFIX, timeoutMs: 2_000 })).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
    } finally {
      redis.disconnect();
    }
  });
});
