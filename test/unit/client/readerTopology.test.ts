import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createReaderClient } from '../../../lib/client/readerTopology.ts';
import { openReader } from '../../../lib/client/openReader.ts';

// Which connection openReader builds from its options, and the mistakes it
// refuses before connecting (no server needed: every client is lazy).

afterEach(() => {
  vi.restoreAllMocks();
});

describe('createReaderClient', () => {
  it('builds one node for a URL, sending READONLY only when reading a replica', () => {
    const primary = createReaderClient({ url: 'redis://127.0.0.1:1' }, 1_000);
    const replica = createReaderClient({ url: 'redis://127.0.0.1:1', readFrom: 'replica' }, 1_000);
    expect(primary).toBeInstanceOf(Redis);
    expect((primary as Redis).options.readOnly).toBe(false);
    expect((replica as Redis).options.readOnly).toBe(true);
  });

  it('builds a Cluster that reads masters for primary, and a sticky replica per slot otherwise', () => {
    const nodes = ['redis://user:secret@127.0.0.1:7000', 'redis://127.0.0.1:7001'];
    const primary = createReaderClient({ cluster: { nodes } }, 1_000) as Cluster;
    const replica = createReaderClient({ cluster: { nodes }, readFrom: 'replica' }, 1_000) as Cluster;
    expect(primary).toBeInstanceOf(Cluster);
    expect(primary.options.scaleReads).toBe('master');
    expect(primary.options.redisOptions).toMatchObject({ username: 'user', password: 'secret' });
    const pick = replica.options.scaleReads as (nodes: string[], command: unknown) => string;
    const slotNodes = ['master', 'replica-a', 'replica-b'];
    const chosen = pick(slotNodes, {});
    expect(['replica-a', 'replica-b']).toContain(chosen);
    for (let i = 0; i < 20; i++) expect(pick(slotNodes, {})).toBe(chosen);
    expect(pick(['master'], {})).toBe('master');
  });

  it('maps the addresses cluster nodes announce as the daemon\'s config does: "host:port" or { host, port }', () => {
    const natMap = { '10.0.0.1:7000': '127.0.0.1:7000', '10.0.0.2:7001': { host: 'localhost', port: 7001 } };
    const cluster = createReaderClient({ cluster: { nodes: ['redis://127.0.0.1:7000'], natMap } }, 1_000) as Cluster;
    expect(cluster.options.natMap).toEqual({ '10.0.0.1:7000': { host: '127.0.0.1', port: 7000 }, '10.0.0.2:7001': { host: 'localhost', port: 7001 } });
    const nodes = ['redis://127.0.0.1:7000'];
    expect(() => createReaderClient({ cluster: { nodes, natMap: { '10.0.0.1:7000': '127.0.0.1' } } }, 1_000)).toThrow(/maps "10.0.0.1:7000" to "127.0.0.1"; write .* as "host:port" or \{ host, port \}/);
    expect(() => createReaderClient({ cluster: { nodes, natMap: { '10.0.0.1:7000': { host: 'a', port: 0 } } } }, 1_000)).toThrow(/TC_INVALID_ARGUMENT|maps "10.0.0.1:7000"/);
    expect(() => createReaderClient({ cluster: { nodes, natMap: { '10.0.0.1': 'a:1' } } }, 1_000)).toThrow(/has the key "10.0.0.1"/);
  });

  it('reconnects after a random pause below a ceiling doubling from 100 ms to 2 s, on one node, a cluster and through sentinels', () => {
    const draws = [0.25, 0.75, 0.5, 0.999];
    vi.spyOn(Math, 'random').mockImplementation(() => draws.shift()!);
    const node = (createReaderClient({ url: 'redis://127.0.0.1:1' }, 1_000) as Redis).options.retryStrategy!;
    const cluster = (createReaderClient({ cluster: { nodes: ['redis://127.0.0.1:1'] } }, 1_000) as Cluster).options.clusterRetryStrategy!;
    const sentinel = (createReaderClient({ sentinel: { sentinels: ['redis://127.0.0.1:1'], name: 'cache' } }, 1_000) as Redis).options.sentinelRetryStrategy!;
    // ioredis counts attempts from 1: ceilings 100, 400, 1600, then the 2 s cap.
    expect([node(1), cluster(3, new Error('down')), sentinel(5), node(20)]).toEqual([25, 300, 800, 1998]);
  });

  it('builds a Sentinel client for the primary, or a replica', () => {
    const sentinel = { sentinels: ['redis://127.0.0.1:26379'], name: 'cache' };
    expect((createReaderClient({ sentinel }, 1_000) as Redis).options).toMatchObject({ role: 'master', name: 'cache' });
    expect((createReaderClient({ sentinel, readFrom: 'preferReplica' }, 1_000) as Redis).options.role).toBe('slave');
  });

  it('reaches the sentinels and the data nodes with one TLS setting: `tls` or a rediss:// sentinel URL; sentinel.tls false keeps the sentinels plain', () => {
    const options = (sentinels: string[], tls?: { ca: string }, sentinelTls?: false) =>
      (createReaderClient({ sentinel: { sentinels, name: 'cache', ...(sentinelTls === undefined ? {} : { tls: sentinelTls }) }, ...(tls === undefined ? {} : { tls }) }, 1_000) as Redis).options;
    expect(options(['redis://a:1'], { ca: 'CA' })).toMatchObject({ tls: { ca: 'CA' }, sentinelTLS: { ca: 'CA' }, enableTLSForSentinelMode: true });
    expect(options(['rediss://a:1'])).toMatchObject({ tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true });
    const plainSentinels = options(['redis://a:1'], { ca: 'CA' }, false);
    expect(plainSentinels).toMatchObject({ tls: { ca: 'CA' }, enableTLSForSentinelMode: true });
    expect(plainSentinels.sentinelTLS).toBeUndefined();
    const plain = options(['redis://a:1']);
    expect([plain.tls, plain.sentinelTLS, plain.enableTLSForSentinelMode]).toEqual([undefined, undefined, false]);
    expect(() => options(['rediss://a:1'], undefined, false)).toThrow(/sentinel\.tls: false .* rediss:\/\//);
  });

  it('refuses none or several of url, cluster and sentinel, an unknown readFrom, and a URL that is not redis://', () => {
    expect(() => createReaderClient({}, 1_000)).toThrow(/exactly one of/);
    expect(() => createReaderClient({ url: 'redis://a:1', cluster: { nodes: ['redis://b:2'] } }, 1_000)).toThrow(/exactly one of/);
    expect(() => createReaderClient({ url: 'redis://a:1', readFrom: 'slave' as 'replica' }, 1_000)).toThrow(/readFrom must be/);
    expect(() => createReaderClient({ cluster: { nodes: ['http://a:1'] } }, 1_000)).toThrow(/redis:\/\//);
    expect(() => createReaderClient({ cluster: { nodes: [] } }, 1_000)).toThrow(/at least one node/);
    expect(() => createReaderClient({ sentinel: { sentinels: ['redis://a:1'], name: '' } }, 1_000)).toThrow(/sentinel.name/);
  });
});

describe('openReader with a connection of yours', () => {
  it('refuses readFrom (it belongs on that connection: scaleReads) and a url beside it', async () => {
    const redis = new Redis({ lazyConnect: true });
    await expect(openReader({ redis, table: 't', readFrom: 'replica' })).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
    await expect(openReader({ redis, table: 't', url: 'redis://a:1' })).rejects.toThrow(/exactly one of/);
    redis.disconnect();
  });
});
