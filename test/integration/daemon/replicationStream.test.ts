import type pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from '../../../daemon/logical/lsn.ts';
import { PgoutputTransactions, type CommittedTransaction } from '../../../daemon/logical/pgoutputTransactions.ts';
import { ReplicationStream } from '../../../daemon/logical/replicationStream.ts';
import { privatePool, startLogicalPostgres } from '../../support/logicalPostgres.ts';
import type { PrivatePostgres } from '../../support/privateServers.ts';
import { waitFor } from '../../support/waitFor.ts';

/**
 * The replication stream's own paranoid check: a WAL sender that stops
 * answering (SIGSTOP: the connection stays open, nothing comes) is a
 * half-open connection; the stream drops it and reconnects from the slot,
 * losing nothing.
 */

let server: PrivatePostgres;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startLogicalPostgres();
  pool = privatePool(server.url);
  await pool.query('CREATE TABLE items (id int PRIMARY KEY); CREATE PUBLICATION tc_stream FOR TABLE items');
  await pool.query(`SELECT pg_create_logical_replication_slot('tc_stream', 'pgoutput')`);
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await server?.stop();
});

describe('ReplicationStream', () => {
  it('drops a silent connection (WAL sender stopped) and resumes from the slot without losing a transaction', { timeout: 30_000 }, async () => {
    const transactions = new PgoutputTransactions({ sources: [{ schema: 'public', table: 'items', keyColumns: ['id'] }], maxKeys: 100 });
    const stream = new ReplicationStream({ connectionString: server.url, slot: 'tc_stream', publication: 'tc_stream', transactions, logger: pino({ level: 'silent' }), statusIntervalMs: 200, retryMaxMs: 200 });
    const received: CommittedTransaction[] = [];
    let connections = 0;
    let disconnections = 0;
    stream.on('transaction', (transaction) => received.push(transaction));
    stream.on('connected', () => connections++);
    stream.on('disconnected', () => disconnections++);
    const { rows } = await pool.query<{ lsn: string }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots');
    stream.acknowledge(parseLsn(rows[0]!.lsn));
    await stream.start();
    try {
      const pid = await waitFor('the WAL sender', async () => (await pool.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots')).rows[0]?.pid ?? undefined);
      process.kill(pid, 'SIGSTOP');
      try {
        await pool.query('INSERT INTO items VALUES (1)');
        await waitFor('the silent stream dropped', () => disconnections > 0);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await waitFor('the stream back', () => connections > 1);
      await waitFor('the insert made while the WAL sender was stopped', () => received.some((transaction) => JSON.stringify(transaction.payloads).includes('[[1]]')));
      expect(received.flatMap((transaction) => transaction.payloads.map((payload) => payload.t))).toContain('public.items');
    } finally {
      await stream.close();
    }
  });
});
