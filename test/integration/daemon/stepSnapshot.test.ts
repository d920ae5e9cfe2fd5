import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStepSnapshots } from '../../../daemon/stepSnapshot.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { waitFor } from '../../support/waitFor.ts';
import { parseLsn } from '../../../daemon/logical/lsn.ts';
import type { ChangePayload } from '../../../sql-triggers/payload.ts';

const CHANNEL = 'tc_step_snapshot_test';

let db: TestDatabase;
let listener: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('step_snapshot');
  await db.pool.query('CREATE TABLE t (id integer PRIMARY KEY, v integer NOT NULL); INSERT INTO t VALUES (1, 0)');
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  await listener.query(`LISTEN ${CHANNEL}`);
});

afterAll(async () => {
  await listener?.end();
  await db?.drop();
});

/** Commits an update of row 1 and returns its transaction id. */
async function commitUpdate(value: number): Promise<bigint> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('UPDATE t SET v = $1 WHERE id = 1', [value]);
    const { rows } = await client.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await client.query('COMMIT');
    return BigInt(rows[0]!.xid);
  } finally {
    client.release();
  }
}

describe('PostgresStepSnapshots', () => {
  it('returns once its tick is back; sees exactly the transactions committed before the snapshot, and its session reads that snapshot', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL });
    const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
    listener.on('notification', forward);
    try {
      const before = await commitUpdate(1);
      const opening = snapshots.open();
      const snapshot = await opening;
      try {
        const after = await commitUpdate(2);
        expect(snapshot.isVisible(before)).toBe(true);
        expect(snapshot.isVisible(after)).toBe(false);
        const { rows } = await snapshot.session!.query<{ v: number }>('SELECT v FROM t WHERE id = 1');
        expect(rows).toEqual([{ v: 1 }]);
        // The first tick races the snapshot's query; a second is sent only when the first committed before S.
        expect([1, 2]).toContain(snapshot.ticks);
      } finally {
        await snapshot.close();
      }
    } finally {
      listener.off('notification', forward);
    }
  });

  it('gives up the tick wait when the listener is reset (its tick may be lost), with TC_CONNECTION_FAILED', async () => {
    // Nobody forwards this source's ticks: only the reset can end the wait.
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, tickTimeoutMs: 120_000 });
    let tickSent = false;
    const seen = (message: pg.Notification) => {
      if (message.payload?.includes('tablecache_tick')) tickSent = true;
    };
    listener.on('notification', seen);
    try {
      const opening = snapshots.open();
      opening.catch(() => undefined);
      await expect.poll(() => tickSent, { timeout: 10_000 }).toBe(true);
      snapshots.listenerReset();
      await expect(opening).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
    } finally {
      listener.off('notification', seen);
    }
    // The session went back to the pool (discarded): the pool still works.
    expect((await db.pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('has received, once open, the notification of every transaction visible in its snapshot, while writers commit', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL });
    const received = new Set<bigint>();
    const forward = (message: pg.Notification) => {
      if (!snapshots.acceptTick(message.payload ?? '') && /^\d+$/.test(message.payload ?? '')) received.add(BigInt(message.payload!));
    };
    listener.on('notification', forward);
    const committed: bigint[] = [];
    let writing = true;
    // Notifying transactions whose payload is their own xid, committed as fast as two connections go.
    const writers = Array.from({ length: 2 }, async () => {
      while (writing) {
        const { rows } = await db.pool.query<{ xid: string }>(`SELECT pg_notify('${CHANNEL}', pg_current_xact_id()::text), pg_current_xact_id()::text AS xid`);
        committed.push(BigInt(rows[0]!.xid));
      }
    });
    try {
      let checked = 0;
      for (let step = 0; step < 100; step++) {
        const snapshot = await snapshots.open();
        const seen = new Set(received);
        // Includes transactions that committed while the snapshot was being opened: the ones the tick is for.
        const known = [...committed];
        try {
          for (const xid of known) {
            if (!snapshot.isVisible(xid)) continue;
            checked++;
            expect(seen.has(xid), `transaction ${xid} is visible in ${snapshot.text} but its notification had not arrived`).toBe(true);
          }
        } finally {
          await snapshot.close();
        }
      }
      expect(checked).toBeGreaterThan(0);
    } finally {
      writing = false;
      await Promise.all(writers);
      listener.off('notification', forward);
    }
  });

  it('bounds the statements of its session: statementTimeoutMs from the open, limitStatements after it, for that transaction only', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, statementTimeoutMs: 100 });
    const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
    listener.on('notification', forward);
    try {
      const snapshot = await snapshots.open();
      try {
        const timeout = async () => (await snapshot.session!.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t;
        expect(await timeout()).toBe('100ms');
        await snapshot.limitStatements(60_000);
        expect(await timeout()).toBe('1min');
        await snapshot.limitStatements(0);
        expect(await timeout()).toBe('0');
        // A statement past the bound is cancelled (57014).
        await snapshot.limitStatements(100);
        await expect(snapshot.session!.query('SELECT pg_sleep(5)')).rejects.toMatchObject({ code: '57014' });
      } finally {
        await snapshot.close();
      }
      // SET LOCAL ended with the snapshot's transaction: the pooled session is back to the server's default.
      const client = await db.pool.connect();
      try {
        expect((await client.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t).toBe('0');
      } finally {
        client.release();
      }
    } finally {
      listener.off('notification', forward);
    }
  });

  it('opens at most maxOpen snapshots at once; the next opens when one closes', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, maxOpen: 1 });
    const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
    listener.on('notification', forward);
    try {
      const first = await snapshots.open();
      let second: Awaited<ReturnType<typeof snapshots.open>> | undefined;
      const opening = snapshots.open().then((snapshot) => (second = snapshot));
      // Whatever else happens meanwhile (here: a round trip on the first), the second cannot open while the first is.
      await first.session!.query('SELECT 1');
      expect(second).toBeUndefined();
      await first.close();
      await opening;
      expect(second!.isVisible(1n)).toBe(true);
      await second!.close();
    } finally {
      listener.off('notification', forward);
    }
  });

  it('gives up after tickTimeoutMs with TC_TIMEOUT when the tick never comes back', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: 'tc_nobody_listens', tickTimeoutMs: 50 });
    await expect(snapshots.open()).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
  });
  it('reuses a closed snapshot\'s session for the next open, rolling its transaction back in the same round trip, and returns an unused one to the pool', async () => {
    // Parked until the next open, however slow this machine is; then (below) a short park time, to see it end by itself.
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, parkMs: 60_000 });
    const briefly = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, parkMs: 1 });
    const forward = (message: pg.Notification) => [snapshots, briefly].map((source) => source.acceptTick(message.payload ?? ''));
    listener.on('notification', forward);
    const backend = async (snapshot: Awaited<ReturnType<typeof snapshots.open>>) =>
      (await snapshot.session!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    try {
      const first = await snapshots.open();
      const pid = await backend(first);
      await first.close();
      // Parked: its read-only transaction is still open until the next open (or the park time) ends it.
      const parked = await db.pool.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
      expect(parked.rows[0]?.state).toBe('idle in transaction');
      const written = await commitUpdate(3);
      const second = await snapshots.open();
      expect(await backend(second)).toBe(pid);
      // A new transaction, with a new snapshot: it sees what committed after the first.
      expect(second.isVisible(written)).toBe(true);
      expect((await second.session!.query<{ v: number }>('SELECT v FROM t WHERE id = 1')).rows).toEqual([{ v: 3 }]);
      await second.close();
      const third = await briefly.open();
      const unused = await backend(third);
      await third.close();
      // (The check may run on that very session, once back in the pool: 'active' then.)
      await waitFor('the parked session to be rolled back', async () => (await db.pool.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [unused])).rows[0]?.state !== 'idle in transaction', {
        timeoutMs: 5_000,
      });
    } finally {
      listener.off('notification', forward);
      await snapshots.close();
      await briefly.close();
    }
  });

  it("opens the next snapshot on a new session when the server ended a parked one (idle_in_transaction_session_timeout below the park time)", async () => {
    // Long enough for a snapshot's own use of its session on a loaded machine, far below the park time.
    const pool = new pg.Pool({ connectionString: db.url, options: '-c idle_in_transaction_session_timeout=1000' });
    const snapshots = new PostgresStepSnapshots({ pool, channel: CHANNEL, parkMs: 60_000 });
    const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
    listener.on('notification', forward);
    try {
      const first = await snapshots.open();
      const pid = (await first.session!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await first.close();
      await waitFor('the server to end the parked session', async () => (await db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, { timeoutMs: 5_000 });
      const written = await commitUpdate(5);
      const second = await snapshots.open();
      try {
        expect(second.isVisible(written)).toBe(true);
        expect((await second.session!.query<{ v: number }>('SELECT v FROM t WHERE id = 1')).rows).toEqual([{ v: 5 }]);
      } finally {
        await second.close();
      }
    } finally {
      listener.off('notification', forward);
      await snapshots.close();
      await pool.end();
    }
  });

  it('opens the next snapshot when the parked session is terminated just before the open (its query meets the termination)', async () => {
    const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, parkMs: 60_000 });
    const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
    listener.on('notification', forward);
    try {
      for (let round = 0; round < 5; round++) {
        const parked = await snapshots.open();
        const pid = (await parked.session!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        await parked.close();
        await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
        const next = await snapshots.open();
        expect((await next.session!.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid).not.toBe(pid);
        await next.close();
      }
    } finally {
      listener.off('notification', forward);
      await snapshots.close();
    }
  });

  describe('with the logical capture (ticks are logical messages)', () => {
    /** Where the WAL ends now. */
    const walEnd = async () => parseLsn((await db.pool.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l);

    it('needs no tick when the stream has passed where the WAL ended as its snapshot was taken', async () => {
      const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: 'tc_nobody_listens', tick: 'logicalMessage', tickTimeoutMs: 60_000 });
      const committed = await commitUpdate(4);
      // Nothing delivers this snapshot source's ticks: only the stream's position can prove its cuts.
      snapshots.streamReached((await walEnd()) + 1_000_000n);
      const snapshot = await snapshots.open();
      expect(snapshot.ticks).toBe(0);
      expect(snapshot.isVisible(committed)).toBe(true);
      await snapshot.close();
      await snapshots.close();
    });

    it('waits for the stream to pass the WAL position of its snapshot; any later commit the stream delivers proves it before its own tick is back', async () => {
      const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: 'tc_nobody_listens', tick: 'logicalMessage', tickTimeoutMs: 60_000 });
      const before = await walEnd();
      snapshots.streamReached(before - 1n);
      let opened: Awaited<ReturnType<typeof snapshots.open>> | undefined;
      const opening = snapshots.open().then((snapshot) => (opened = snapshot));
      // A position before the snapshot's proves nothing: a round trip later the open still waits.
      snapshots.streamReached(before - 1n);
      await db.pool.query('SELECT 1');
      expect(opened).toBeUndefined();
      // The stream delivering commits written after the snapshot (its tick never comes back here).
      await waitFor(
        'the open to be proven by the stream position',
        async () => {
          await commitUpdate(5);
          snapshots.streamReached(await walEnd());
          return opened !== undefined;
        },
        { timeoutMs: 10_000 },
      );
      await opening;
      // Its tick went out unless the stream had passed its snapshot by the time S was known.
      expect([0, 1]).toContain(opened!.ticks);
      await opened!.close();
      await snapshots.close();
    });

    it('gives up waiting for the stream when it is reset, with TC_CONNECTION_FAILED', async () => {
      const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: 'tc_nobody_listens', tick: 'logicalMessage', tickTimeoutMs: 60_000 });
      let settled = false;
      const opening = snapshots.open();
      opening.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Each reset fails whatever waits at that moment; the open may still be on its snapshot query at the first.
      await waitFor(
        'the open to fail on the reset',
        () => {
          snapshots.listenerReset();
          return settled;
        },
        { timeoutMs: 10_000 },
      );
      await expect(opening).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
      await snapshots.close();
    });
  });
  describe('proven by a trusted writer\'s change', () => {
    /** A change payload of transaction `xid`, as the triggers send it. */
    const change = (xid: bigint): ChangePayload => ({ v: 1, t: 'public.t', xid: String(xid), ts: Date.now(), op: 'U', c: ['id'], k: [[1]] });
    const writer = { processId: 4242, verified: false };

    it('goes on at the first change whose transaction committed after its snapshot, before its tick is back; changes of transactions in the snapshot prove nothing', async () => {
      // Nothing forwards this source's ticks: only a writer's change can prove its cut.
      const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, tickTimeoutMs: 60_000, trustsSender: () => true });
      const before = await commitUpdate(6);
      let opened: Awaited<ReturnType<typeof snapshots.open>> | undefined;
      const opening = snapshots.open().then((snapshot) => (opened = snapshot));
      snapshots.changeDelivered(change(before), writer);
      await db.pool.query('SELECT 1');
      expect(opened).toBeUndefined();
      let after = 0n;
      await waitFor(
        'the open to be proven by a change committed after its snapshot',
        async () => {
          after = await commitUpdate(7);
          snapshots.changeDelivered(change(after), writer);
          return opened !== undefined;
        },
        { timeoutMs: 10_000 },
      );
      await opening;
      expect(opened!.isVisible(before)).toBe(true);
      expect(opened!.isVisible(after)).toBe(false);
      await opened!.close();
      await snapshots.close();
    });

    it('while trusted writers commit every few ms, sends no tick when a writer\'s commit proves the cut within the grace, and its tick after the grace otherwise', async () => {
      let graceMs = 60_000;
      const busyWriters = { active: () => true, committed: () => undefined, graceMs: () => graceMs };
      const snapshots = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, tickTimeoutMs: 60_000, trustsSender: () => true, writerPace: busyWriters });
      const forward = (message: pg.Notification) => snapshots.acceptTick(message.payload ?? '');
      listener.on('notification', forward);
      try {
        let opened: Awaited<ReturnType<typeof snapshots.open>> | undefined;
        const opening = snapshots.open().then((snapshot) => (opened = snapshot));
        await waitFor(
          'the open to be proven by a change committed after its snapshot',
          async () => {
            snapshots.changeDelivered(change(await commitUpdate(10)), writer);
            return opened !== undefined;
          },
          { timeoutMs: 10_000 },
        );
        await opening;
        expect({ ticks: opened!.ticks, provenBy: opened!.provenBy }).toEqual({ ticks: 0, provenBy: 'commit' });
        await opened!.close();

        graceMs = 1;
        const ticked = await snapshots.open();
        // No writer's change after its snapshot came: after the grace, its own tick (sent after S: no race) proved it.
        expect({ ticks: ticked.ticks, provenBy: ticked.provenBy }).toEqual({ ticks: 1, provenBy: 'tick' });
        await ticked.close();
      } finally {
        listener.off('notification', forward);
        await snapshots.close();
      }
    });

    it('is not proven by the change of a sender it does not trust (a role that may only NOTIFY could forge the xid), unless the sender check verified it', async () => {
      const untrusting = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, tickTimeoutMs: 500, trustsSender: () => false });
      const opening = untrusting.open();
      opening.catch(() => undefined);
      // A forged xid far beyond any real one: not visible in any snapshot.
      const forged = change(2n ** 60n);
      const delivering = setInterval(() => untrusting.changeDelivered(forged, writer), 5);
      try {
        await expect(opening).rejects.toMatchObject({ code: 'TC_TIMEOUT' });
      } finally {
        clearInterval(delivering);
      }
      const verifying = new PostgresStepSnapshots({ pool: db.pool, channel: CHANNEL, tickTimeoutMs: 60_000 });
      let opened: Awaited<ReturnType<typeof verifying.open>> | undefined;
      const verified = verifying.open().then((snapshot) => (opened = snapshot));
      await waitFor(
        'the open to be proven by a verified sender\'s change',
        async () => {
          verifying.changeDelivered(change(await commitUpdate(8)), { processId: 4242, verified: true });
          return opened !== undefined;
        },
        { timeoutMs: 10_000 },
      );
      await verified;
      await opened!.close();
      await Promise.all([untrusting.close(), verifying.close()]);
    });
  });
});
