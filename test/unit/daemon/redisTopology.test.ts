import { describe, expect, it } from 'vitest';
import type { RedisConfig } from '../../../daemon/config/configSchema.ts';
import type { RedisConnection } from '../../../daemon/redisConnection.ts';
import { refuseClusterNodeUrl, topologyErrorOf } from '../../../daemon/redisTopology.ts';

const single: RedisConfig = { url: 'redis://cache:7000', keyPrefix: 'tc:', tls: false };
const answering = (info: string | Error) => ({ info: () => (info instanceof Error ? Promise.reject(info) : Promise.resolve(info)) }) as unknown as RedisConnection;

describe('topologyErrorOf', () => {
  it('finds a failover or resharding reply anywhere in the cause chain', () => {
    expect(topologyErrorOf(new Error('CLUSTERDOWN The cluster is down'))).toBe('CLUSTERDOWN The cluster is down');
    expect(topologyErrorOf(new Error('reading table "users" failed', { cause: new Error('MOVED 7603 10.0.0.2:6379') }))).toBe('MOVED 7603 10.0.0.2:6379');
    expect(topologyErrorOf(new Error('x', { cause: new Error('TRYAGAIN Multiple keys request during rehashing of slot') }))).toMatch(/^TRYAGAIN/);
    expect(topologyErrorOf(new Error('LOADING Redis is loading the dataset in memory'))).toMatch(/^LOADING/);
  });

  it('leaves every other error alone: those are not healed by waiting', () => {
    expect(topologyErrorOf(new Error('WRONGPASS invalid username-password pair'))).toBeUndefined();
    expect(topologyErrorOf(new Error('ERR unknown command'))).toBeUndefined();
    expect(topologyErrorOf('MOVED as a string is no error')).toBeUndefined();
  });
});

describe('refuseClusterNodeUrl', () => {
  it('refuses redis.url naming a cluster node, naming redis.cluster as the fix', async () => {
    await expect(refuseClusterNodeUrl(answering('# Cluster\r\ncluster_enabled:1\r\n'), single, 'Redis at redis://cache:7000')).rejects.toMatchObject({
      code: 'TC_CONFIG_INVALID',
      message: expect.stringContaining('Redis at redis://cache:7000 is a node of a Redis Cluster') as unknown,
    });
  });

  it('lets a plain server through, one that does not allow INFO, and any cluster or sentinel configuration', async () => {
    await expect(refuseClusterNodeUrl(answering('# Cluster\r\ncluster_enabled:0\r\n'), single, 'x')).resolves.toBeUndefined();
    await expect(refuseClusterNodeUrl(answering(new Error('NOPERM')), single, 'x')).resolves.toBeUndefined();
    const cluster: RedisConfig = { cluster: { nodes: ['redis://a:7000'] }, keyPrefix: 'tc:', tls: false };
    await expect(refuseClusterNodeUrl(answering('cluster_enabled:1'), cluster, 'x')).resolves.toBeUndefined();
  });
});
