import { describe, expect, it } from 'vitest';
import { formatLsn, fullXid, parseLsn } from '../../../daemon/logical/lsn.ts';
import type { DecodedMessage, DecodedRelation } from '../../../daemon/logical/pgoutputDecoder.ts';
import { PgoutputTransactions, type CommittedTransaction } from '../../../daemon/logical/pgoutputTransactions.ts';

function relation(name: string, keyColumns: string[], replicaIdentity: DecodedRelation['replicaIdentity'] = 'default'): DecodedRelation {
  return { oid: 1, schema: 'app', name, replicaIdentity, columns: [], keyColumns };
}

const users = relation('users', ['user_id']);
const links = relation('users_cities', ['user_id']);
const begin = (xid: number): DecodedMessage => ({ tag: 'begin', xid });
const commit: DecodedMessage = { tag: 'commit', commitLsn: 0x1f0n, endLsn: 0x200n, commitTime: 1_700_000_000_000 };

function transactions(maxKeys = 100, onCoarse?: (source: string, why: string) => void, xidText?: (xid: number) => string): PgoutputTransactions {
  return new PgoutputTransactions({
    sources: [
      { schema: 'app', table: 'users', keyColumns: ['user_id'], columns: ['name'] },
      { schema: 'app', table: 'users_cities', keyColumns: ['city_id'] },
    ],
    maxKeys,
    ...(onCoarse === undefined ? {} : { onCoarse }),
    ...(xidText === undefined ? {} : { xidText }),
  });
}

function run(assembler: PgoutputTransactions, messages: DecodedMessage[]): CommittedTransaction {
  let result: unknown = null;
  for (const message of [begin(42), ...messages, commit]) result = assembler.take(message) ?? result;
  return result as CommittedTransaction;
}

describe('PgoutputTransactions', () => {
  it('turns a transaction into one payload per source with its distinct new and old keys, at its commit', () => {
    const done = run(transactions(), [
      { tag: 'insert', relation: users, new: { user_id: 1, name: 'a' } },
      { tag: 'update', relation: users, key: { user_id: 2 }, old: null, new: { user_id: 3, name: 'b' } },
      { tag: 'delete', relation: users, key: { user_id: 1 }, old: null },
    ]);
    expect(done).toMatchObject({ xid: 42, commitLsn: 0x1f0n, endLsn: 0x200n, messages: [] });
    expect(done.payloads).toEqual([{ v: 1, t: 'app.users', xid: '', ts: 1_700_000_000_000, op: 'U', c: ['user_id'], k: [[1], [3], [2]] }]);
  });

  it("gives the payloads the transaction's 64-bit id when told how to widen it", () => {
    const done = run(transactions(100, undefined, (xid) => String(2n ** 32n + BigInt(xid))), [{ tag: 'insert', relation: users, new: { user_id: 1, name: 'a' } }]);
    expect(done.payloads).toMatchObject([{ xid: '4294967338', k: [[1]] }]);
  });

  it('reads the columns of the keys and the column filter, and no others, of a source table only', () => {
    const assembler = transactions();
    expect([...assembler.columnsOf('app', 'users')!]).toEqual(['user_id', 'name']);
    expect([...assembler.columnsOf('app', 'users_cities')!]).toEqual(['city_id']);
    expect(assembler.columnsOf('app', 'other')).toBeNull();
  });

  it('skips an UPDATE that kept the key and the filtered columns when the whole old row is known (REPLICA IDENTITY FULL)', () => {
    const full = relation('users', ['user_id', 'name', 'nickname'], 'full');
    const done = run(transactions(), [{ tag: 'update', relation: full, key: null, old: { user_id: 1, name: 'a', nickname: 'x' }, new: { user_id: 1, name: 'a', nickname: 'y' } }]);
    expect(done.payloads).toEqual([]);
  });

  it('reloads (X) a source keyed by a column outside the replica identity, once it cannot tell an old key, and says why once', () => {
    const reasons: string[] = [];
    const assembler = transactions(100, (source, why) => reasons.push(`${source}: ${why}`));
    for (let i = 0; i < 2; i++) {
      const done = run(assembler, [{ tag: 'update', relation: links, key: null, old: null, new: { user_id: 1, city_id: 5 } }]);
      expect(done.payloads).toMatchObject([{ t: 'app.users_cities', op: 'X', reason: 'too_large' }]);
    }
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/city_id is not in the replica identity/);
  });

  it('sends T for a TRUNCATE and X past the key bound', () => {
    expect(run(transactions(), [{ tag: 'truncate', relations: [users] }]).payloads).toMatchObject([{ op: 'T' }]);
    const many = Array.from({ length: 3 }, (_, i): DecodedMessage => ({ tag: 'insert', relation: users, new: { user_id: i, name: 'n' } }));
    expect(run(transactions(2), many).payloads).toMatchObject([{ op: 'X' }]);
  });

  it('hands a non-transactional message over at once, and a transactional one with its commit, after the changes', () => {
    const assembler = transactions();
    expect(assembler.take({ tag: 'message', transactional: false, lsn: 0x150n, prefix: 'tc', text: 'tick' })).toEqual({ prefix: 'tc', text: 'tick', lsn: 0x150n });
    const done = run(assembler, [{ tag: 'message', transactional: true, lsn: 0x160n, prefix: 'tc', text: 'tick' }]);
    expect(done.messages).toEqual([{ prefix: 'tc', text: 'tick', lsn: 0x160n }]);
  });

  it('ignores tables it does not cache and forgets a transaction broken off by a reconnect', () => {
    const assembler = transactions();
    assembler.take(begin(7));
    assembler.take({ tag: 'insert', relation: relation('other', ['id']), new: { id: 1 } });
    expect(assembler.inTransaction).toBe(true);
    assembler.reset();
    expect(assembler.inTransaction).toBe(false);
    expect(assembler.take(commit)).toBeNull();
  });
});

describe('WAL positions and transaction ids', () => {
  it('parses and prints LSNs as Postgres does', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(() => parseLsn('16B374D848')).toThrow(/pg_lsn/);
  });

  it('widens a 32-bit xid to the 64-bit one nearest a recent id, across an epoch boundary', () => {
    expect(fullXid(1000, 5n * 2n ** 32n + 2000n)).toBe(5n * 2n ** 32n + 1000n);
    expect(fullXid(0xfffffff0, 5n * 2n ** 32n + 10n)).toBe(4n * 2n ** 32n + 0xfffffff0n);
    expect(fullXid(5, 4n * 2n ** 32n + 0xfffffff0n)).toBe(5n * 2n ** 32n + 5n);
  });
});
