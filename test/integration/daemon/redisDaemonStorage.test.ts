import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../lib/core/logger.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { writerScripts } from '../../../lib/redis/scripts/writerScripts.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import type { Row } from '../../../daemon/daemonStorage.ts';
import { RedisDaemonStorage } from '../../../daemon/redisDaemonStorage.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';

const prefix = uniqueRedisPrefix('daemonstorage');
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(testRedisUrl(), { lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

const scorer: RecordScorer<Row> = { indexNames: ['primary_key'], score: (_, row) => Number(row.id), primaryKey: (row) => Number(row.id) };

/**
 * Holds the writer's open() after it took the lease (at its FUNCTION LOAD),
 * lets another writer take the lease, and lets open() go on only once a
 * renewal has answered that the lease is lost: the lost-callback then runs
 * while open() is still under way.
 */
function loseLeaseDuringOpen(connection: Redis, leaseKey: string): void {
  const call = connection.call.bind(connection) as (...args: unknown[]) => Promise<unknown>;
  const callBuffer = connection.callBuffer.bind(connection) as (...args: unknown[]) => Promise<unknown>;
  let renewalAnswered!: () => void;
  const renewal = new Promise<void>((resolve) => (renewalAnswered = resolve));
  let held = false;
  connection.call = ((...args: unknown[]) => {
    if (held || String(args[0]).toLowerCase() !== 'function') return call(...args);
    held = true;
    return redis
      .set(leaseKey, 'another-writer', 'PX', 60_000)
      .then(() => renewal)
      .then(() => call(...args));
  }) as Redis['call'];
  connection.callBuffer = ((...args: unknown[]) => {
    const reply = callBuffer(...args);
    const renewing = args[1] === writerScripts.leaseRenew.sha || args[1] === writerScripts.leaseRenew.source;
    // A renewal sent before the takeover reached Redis still answers 1 (held); wait for the one that answers 0.
    // setImmediate: after every promise reaction of the reply, so the lease has handled it.
    if (held && renewing) reply.then((answer) => answer === 0 && setImmediate(renewalAnswered), () => {});
    return reply;
  }) as Redis['callBuffer'];
}

describe('RedisDaemonStorage', () => {
  it('reports a lease lost while the writer is still opening, and that writer refuses to write', async () => {
    const table = 'leaselost';
    const storage = new RedisDaemonStorage({ url: testRedisUrl(), keyPrefix: prefix, tls: false }, { leaseTtlMs: 300 });
    await storage.connect({ logger: silentLogger, events: new EventEmitter<DaemonEvents>() });
    try {
      loseLeaseDuringOpen(storage.barrierMarks as Redis, new TableKeys(table, prefix).lease);
      const lost: Error[] = [];
      // The other writer took only the lease key, not the fence: open() finishes, with a writer that knows it lost.
      const writer = await storage.openWriter({ table, scorer, standby: false, logger: silentLogger, onLost: (error) => lost.push(error) });
      try {
        expect(lost).toHaveLength(1);
        expect(lost[0]).toMatchObject({ code: 'TC_LEASE_LOST' });
        expect(await writer.writable()).toBe(false);
      } finally {
        await writer.close();
      }
    } finally {
      await storage.close();
    }
  });
});
