import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { ChangeMapper } from '../../../daemon/changeMapper.ts';
import { SenderCheck, SenderGate } from '../../../daemon/senderCheck.ts';
import type { Notification } from '../../../daemon/notificationText.ts';
import { deferred, type Deferred } from '../core/deferred.ts';
import { waitFor } from '../../support/waitFor.ts';

const indexes = new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });
const usersSource = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' };
const change = (key: number) => JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: '1', ts: 1, c: ['user_id'], k: [[key]] });
const barrier = (id: string) => JSON.stringify({ v: 1, op: 'B', id });

/** A pool whose check query answers per process id: a role that may write (1), one that may not (2), an exited session (3); a test may hold an answer. */
function fakePool(hold?: Deferred) {
  let queries = 0;
  return {
    get queries() {
      return queries;
    },
    async query(_text: string, [processId]: [number]) {
      queries++;
      if (hold) await hold.promise;
      if (processId === 3) return { rows: [] };
      return { rows: [{ is_user: true, may_write: processId === 1 }] };
    },
  };
}

function gate(pool: ReturnType<typeof fakePool>) {
  const pushed: string[] = [];
  const rejected: number[] = [];
  const reloads: string[][] = [];
  const describe = (notification: Notification) =>
    notification.kind === 'change' ? `change ${JSON.stringify(notification.payload.op === 'U' ? notification.payload.k : [])}` : notification.kind === 'barrier' ? `barrier ${notification.payload.id}` : notification.kind;
  const senderGate = new SenderGate({
    check: new SenderCheck({ pool: pool as never }),
    mapper: new ChangeMapper([{ name: 'users', indexes, sources: [usersSource] }]),
    pipeline: {
      push: (text) => pushed.push(`raw ${text}`),
      pushClassified: (notification) => pushed.push(describe(notification)),
      requestNotifiedReload: (tables, _reason, kind) => reloads.push([...tables, kind]),
    },
    tables: ['users'],
    onRejected: (processId) => rejected.push(processId),
    logger: pino({ level: 'silent' }),
  });
  return { senderGate, pushed, rejected, reloads };
}

describe('SenderGate', () => {
  it('passes changes of a writer on, rejects those of a role that may not write, and reloads for a sender that has exited', async () => {
    const pool = fakePool();
    const { senderGate, pushed, rejected, reloads } = gate(pool);
    senderGate.push(change(1), 1);
    senderGate.push(change(2), 2);
    senderGate.push(change(3), 3);
    senderGate.push(barrier('b'), 2);
    await waitFor('the barrier', () => pushed.includes('barrier b'));
    expect(pushed).toEqual(['change [[1]]', 'barrier b']);
    expect(rejected).toEqual([2]);
    expect(reloads).toEqual([['users', 'unverified_sender']]);
  });

  it('keeps arrival order while a check query runs: a barrier never overtakes the changes before it', async () => {
    const hold = deferred();
    const pool = fakePool(hold);
    const { senderGate, pushed } = gate(pool);
    senderGate.push(change(1), 1);
    senderGate.push(barrier('b'), 1);
    senderGate.push(change(2), 1);
    expect(pushed).toEqual([]);
    hold.resolve();
    await waitFor('all three', () => pushed.length === 3);
    expect(pushed).toEqual(['change [[1]]', 'barrier b', 'change [[2]]']);
  });

  it('passes the daemon snapshot ticks on unchecked, in their place behind changes whose check is running', async () => {
    // A tick says every notification before it has arrived: overtaking a held change would let a step miss it.
    const hold = deferred();
    const pool = fakePool(hold);
    const { senderGate, pushed } = gate(pool);
    const tick = '{"op":"tablecache_tick","id":"n-1"}';
    senderGate.push(change(1), 1);
    senderGate.push(tick, 2);
    expect(pushed).toEqual([]);
    hold.resolve();
    await waitFor('both', () => pushed.length === 2);
    expect(pushed).toEqual(['change [[1]]', `raw ${tick}`]);
    expect(pool.queries).toBe(1);
  });

  it('asks Postgres once per sender, then answers from its cache', async () => {
    const pool = fakePool();
    const { senderGate, pushed } = gate(pool);
    for (let key = 0; key < 100; key++) senderGate.push(change(key), 1);
    await waitFor('all changes', () => pushed.length === 100);
    expect(pool.queries).toBe(1);
  });
  it('trusts, from its cache only, a sender that may write the table: a miss answers false at once and asks Postgres once, in the background', async () => {
    const pool = fakePool();
    const check = new SenderCheck({ pool: pool as never });
    expect(check.trusts(1, 'public.users')).toBe(false);
    expect(check.trusts(2, 'public.users')).toBe(false);
    await waitFor('both checks answered', () => check.trusts(1, 'public.users'));
    expect(check.trusts(2, 'public.users')).toBe(false);
    expect(check.trusts(3, 'public.users')).toBe(false);
    // One query per sender, however often it was asked while its check ran.
    for (let i = 0; i < 50; i++) check.trusts(2, 'public.users');
    expect(pool.queries).toBeLessThanOrEqual(4);
  });
});
