import { Redis } from 'ioredis';
import type pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BarrierTimeoutError, barrierMarkKey, waitForBarrier } from '../../../lib/client/barrier.ts';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { parseLsn } from '../../../daemon/logical/lsn.ts';
import { PgoutputTransactions, type StreamMessage } from '../../../daemon/logical/pgoutputTransactions.ts';
import { ReplicationStream } from '../../../daemon/logical/replicationStream.ts';
import { classifyNotification } from '../../../daemon/notificationText.ts';
import { privateLogicalDatabase } from '../../support/logicalPostgres.ts';
import { createTestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

type CaptureMethod = 'triggers' | 'logical';
type Database = { readonly url: string; readonly pool: pg.Pool; drop(): Promise<void> };

/** Receives what the daemon would read on `channel`: its LISTEN session, or its pgoutput stream's messages with that prefix. */
interface ChannelReceiver {
  /** The next text on the channel. */
  next(): Promise<string>;
  close(): Promise<void>;
}

async function listenOn(db: Database, channel: string): Promise<ChannelReceiver> {
  const listener = await db.pool.connect();
  await listener.query(`LISTEN ${channel}`);
  return {
    next: () => new Promise<string>((resolve) => listener.once('notification', (message) => resolve(message.payload ?? ''))),
    async close() {
      await listener.query('UNLISTEN *');
      listener.release();
    },
  };
}

async function streamFrom(db: Database, channel: string): Promise<ChannelReceiver> {
  await db.pool.query(`CREATE TABLE IF NOT EXISTS barrier_items (id int PRIMARY KEY); CREATE PUBLICATION tc_barrier FOR TABLE barrier_items`);
  await db.pool.query(`SELECT pg_create_logical_replication_slot('tc_barrier', 'pgoutput')`);
  const transactions = new PgoutputTransactions({ sources: [{ schema: 'public', table: 'barrier_items', keyColumns: ['id'] }], maxKeys: 100 });
  const stream = new ReplicationStream({ connectionString: db.url, slot: 'tc_barrier', publication: 'tc_barrier', transactions, logger: pino({ level: 'silent' }) });
  const received: string[] = [];
  const take = (message: StreamMessage) => {
    if (message.prefix === channel) received.push(message.text);
  };
  stream.on('message', take);
  stream.on('transaction', (transaction) => transaction.messages.forEach(take));
  const { rows } = await db.pool.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'tc_barrier'`);
  stream.acknowledge(parseLsn(rows[0]!.lsn));
  await stream.start();
  return {
    next: () => waitFor(`a message with prefix ${channel} on the stream`, () => received.shift()),
    close: () => stream.close(),
  };
}

for (const method of ['triggers', 'logical'] as const satisfies readonly CaptureMethod[]) {
  describe(`read-your-writes barrier, capture ${method}`, () => {
    let db: Database;

    beforeAll(async () => {
      db = method === 'logical' ? await privateLogicalDatabase() : await createTestDatabase('barrier');
    });

    afterAll(async () => {
      await db?.drop();
    });

    it(`sends a barrier payload the daemon reads, ${method === 'logical' ? 'as a logical message with the channel as prefix' : 'on the given channel'}`, async () => {
      const receiver = method === 'logical' ? await streamFrom(db, 'tc_barrier_test') : await listenOn(db, 'tc_barrier_test');
      try {
        const received = receiver.next();
        const id = await sendBarrier(db.pool, { channel: 'tc_barrier_test', method });
        expect(classifyNotification(await received)).toEqual({ kind: 'barrier', payload: { v: 1, op: 'B', id } });
      } finally {
        await receiver.close();
      }
    });

    it('refuses an id that would not make a plain key', async () => {
      await expect(sendBarrier(db.pool, { channel: 'c', id: 'a b', method })).rejects.toThrow(InvalidArgumentError);
    });
  });
}

// The waiting side reads Redis only: it is the same whichever capture the daemon uses.
describe('waitForBarrier', () => {
  let redis: Redis;
  const keyPrefix = uniqueRedisPrefix('barrier');

  beforeAll(() => {
    redis = new Redis(testRedisUrl());
  });

  afterAll(async () => {
    await deleteKeysWithPrefix(redis, keyPrefix);
    redis.disconnect();
  });

  it('resolves once the mark is set, and times out with TC_TIMEOUT when it never is', async () => {
    const waiting = waitForBarrier(redis, 'marked-later', { keyPrefix, timeoutMs: 5_000 });
    await redis.set(barrierMarkKey(keyPrefix, 'marked-later'), '1', 'PX', 60_000);
    await expect(waiting).resolves.toBeUndefined();
    const error = await waitForBarrier(redis, 'never', { keyPrefix, timeoutMs: 50 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BarrierTimeoutError);
    expect(error).toMatchObject({ code: 'TC_TIMEOUT', barrierId: 'never' });
  });
});
