import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedisCluster, PrivateRedisSentinel } from '../../support/privateRedisTopology.ts';

/** The private topologies other tests build on: they start healthy, and a killed master or primary is replaced by its replica. */

describe('PrivateRedisCluster', () => {
  let cluster: PrivateRedisCluster;

  beforeAll(async () => {
    cluster = await PrivateRedisCluster.start({ masters: 3, replicasPerMaster: 1 });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves every slot with 3 masters and 3 replicas', async () => {
    const nodes = await cluster.nodes();
    expect(nodes.filter((node) => node.role === 'master')).toHaveLength(3);
    expect(nodes.filter((node) => node.role === 'replica')).toHaveLength(3);
    expect(nodes.every((node) => !node.failed)).toBe(true);
  });

  it('promotes the replica of a SIGKILLed master, keeps its replicated keys, and takes the old master back as a replica', async () => {
    const client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    client.on('error', () => {});
    try {
      const masterPort = await cluster.masterPortOf('{topology}kept');
      // WAIT: the write reached the replica before the crash, so the promotion keeps it.
      const direct = new Redis(masterPort, '127.0.0.1');
      await direct.set('{topology}kept', 'yes');
      expect(await direct.call('WAIT', '1', '5000')).toBe(1);
      direct.disconnect();

      const { killedPort, promotedPort } = await cluster.killMasterOf('{topology}kept');
      expect(killedPort).toBe(masterPort);
      expect(promotedPort).not.toBe(masterPort);
      expect(await client.get('{topology}kept')).toBe('yes');

      await cluster.restart(killedPort);
      const rejoined = (await cluster.nodes()).find((node) => node.port === killedPort);
      expect(rejoined).toMatchObject({ role: 'replica', failed: false });
    } finally {
      client.disconnect();
    }
  });
});

describe('PrivateRedisSentinel', () => {
  let topology: PrivateRedisSentinel;

  beforeAll(async () => {
    topology = await PrivateRedisSentinel.start({ replicas: 2 });
  });

  afterAll(async () => {
    await topology?.stop();
  });

  it('promotes a replica when the primary is SIGKILLed, and ioredis follows the sentinels to it', async () => {
    const sentinels = topology.sentinelUrls.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) }));
    const client = new Redis({ sentinels, name: topology.name });
    // Connection refusals from the killed primary until the sentinels name the new one.
    client.on('error', () => {});
    try {
      expect(await topology.primaryPort()).toBe(topology.dataPorts[0]);
      await client.set('topology:kept', 'yes');
      expect(await client.call('WAIT', '2', '5000')).toBe(2);

      const { killedPort, promotedPort } = await topology.killPrimary();
      expect(killedPort).toBe(topology.dataPorts[0]);
      expect(topology.dataPorts.slice(1)).toContain(promotedPort);
      expect(await client.get('topology:kept')).toBe('yes');
    } finally {
      client.disconnect();
    }
  });
});
