import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

interface Row {
  id: number;
}

const scorer: RecordScorer<Row, number> = { indexNames: ['primary_key'], score: (_, row) => row.id, primaryKey: (row) => row.id };
const prefix = uniqueRedisPrefix('failures');
const table = 'rows';
let redis: Redis;
let writer: RedisStorageTable<Row>;

beforeAll(async () => {
  redis = new Redis(testRedisUrl(), { lazyConnect: true });
  await redis.connect();
  writer = await RedisStorageTable.open<Row>({ redis, table, keyPrefix: prefix, scorer });
  await writer.putRecords([{ id: 1 }]);
  await writer.markLoaded({ coverage: null });
});

afterAll(async () => {
  await writer.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

/** A TCP server on a free port; `silent` ones accept and never answer, others forward to the test Redis. */
async function listen(handler: (socket: net.Socket) => void, port = 0): Promise<{ port: number; server: net.Server; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    handler(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, server, sockets };
}

/** Forwards a client socket to the test Redis; while `stalled()` says so, Redis's answers are dropped. */
function forwardToRedis(socket: net.Socket, stalled: () => boolean = () => false): void {
  const target = new URL(testRedisUrl());
  const upstream = net.connect(Number(target.port || 6379), target.hostname);
  socket.pipe(upstream);
  upstream.on('data', (chunk) => {
    if (!stalled()) socket.write(chunk);
  });
  socket.once('close', () => upstream.destroy());
  upstream.once('close', () => socket.destroy());
  upstream.on('error', () => socket.destroy());
  socket.on('error', () => upstream.destroy());
}

async function stop(listening: { server: net.Server; sockets: Set<net.Socket> }): Promise<void> {
  for (const socket of listening.sockets) socket.destroy();
  await new Promise((resolve) => listening.server.close(resolve));
}

describe('a reader when Redis is down or slow', () => {
  it('fails to open with TC_CONNECTION_FAILED when nothing listens', async () => {
    const unused = await listen(() => {});
    await stop(unused);
    await expect(openReader({ url: `redis://127.0.0.1:${unused.port}`, table, keyPrefix: prefix, timeoutMs: 300 })).rejects.toMatchObject({
      code: 'TC_CONNECTION_FAILED',
    });
  });

  it('fails to open with TC_CONNECTION_FAILED when Redis accepts the connection but never answers', async () => {
    const silent = await listen(() => {});
    try {
      await expect(openReader({ url: `redis://127.0.0.1:${silent.port}`, table, keyPrefix: prefix, timeoutMs: 150 })).rejects.toMatchObject({
        code: 'TC_CONNECTION_FAILED',
        message: expect.stringContaining('within 150 ms'),
      });
    } finally {
      await stop(silent);
    }
  });

  it('fails a read with TC_TIMEOUT when Redis stops answering', async () => {
    let stalled = false;
    const proxy = await listen((socket) => {
      forwardToRedis(socket, () => stalled);
    });
    try {
      await using reader = await openReader<Row>({ url: `redis://127.0.0.1:${proxy.port}`, table, keyPrefix: prefix, timeoutMs: 150 });
      expect(await reader.get(1)).toEqual({ id: 1 });
      stalled = true;
      await expect(reader.get(1)).rejects.toMatchObject({ code: 'TC_TIMEOUT', message: expect.stringContaining('150 ms') });
      await expect(reader.range('primary_key', 0, 10)).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
      await expect(reader.info()).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
    } finally {
      await stop(proxy);
    }
  });

  it('does not fail a read that Redis answered while the reader\'s own event loop was blocked past its timeout', async () => {
    await using reader = await openReader<Row>({ url: testRedisUrl(), table, keyPrefix: prefix, timeoutMs: 50 });
    expect(await reader.get(1)).toEqual({ id: 1 });
    for (let round = 0; round < 5; round++) {
      const reading = reader.get(1);
      // The process is busy (a long synchronous task, a GC pause) for 4 timeouts; Redis answers meanwhile, and the
      // answer waits in the socket. The deadline check runs before the poll phase that reads it, so it must look again after.
      const busyUntil = performance.now() + 200;
      while (performance.now() < busyUntil);
      await expect(reading).resolves.toEqual({ id: 1 });
    }
  });

  it('bounds each read on a passed-in connection, which has no timeout of its own', async () => {
    let stalled = false;
    const proxy = await listen((socket) => forwardToRedis(socket, () => stalled));
    const connection = new Redis(proxy.port, '127.0.0.1');
    try {
      await using reader = await openReader<Row>({ redis: connection, table, keyPrefix: prefix, timeoutMs: 150 });
      expect(await reader.get(1)).toEqual({ id: 1 });
      stalled = true;
      await expect(reader.get(1)).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
    } finally {
      connection.disconnect();
      await stop(proxy);
    }
  });

  it('fails fast with TC_CONNECTION_FAILED while Redis is gone, and reads again once it is back', async () => {
    let proxy = await listen((socket) => forwardToRedis(socket));
    const port = proxy.port;
    await using reader = await openReader<Row>({ url: `redis://127.0.0.1:${port}`, table, keyPrefix: prefix, timeoutMs: 2_000 });
    expect(await reader.get(1)).toEqual({ id: 1 });
    await stop(proxy);
    const error = await waitFor('the reader to notice Redis is gone', async () => {
      const failure = await reader.get(1).then(() => undefined, (e: unknown) => e as { code: string });
      return failure?.code === 'TC_CONNECTION_FAILED' ? failure : undefined;
    });
    expect(String(error)).toContain('not reachable');
    proxy = await listen((socket) => forwardToRedis(socket), port);
    try {
      await waitFor('the reader to reconnect', async () => (await reader.get(1).catch(() => undefined))?.id === 1, { timeoutMs: 10_000 });
    } finally {
      await reader.close();
      await stop(proxy);
    }
  });
});
