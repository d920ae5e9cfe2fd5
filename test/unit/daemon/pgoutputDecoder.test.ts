import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { parseLsn } from '../../../daemon/logical/lsn.ts';
import { PgoutputDecoder, type DecodedMessage } from '../../../daemon/logical/pgoutputDecoder.ts';

// pgoutput protocol version 1 messages, byte by byte (https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html).
const text = (value: string) => Buffer.concat([Buffer.from(value), Buffer.from([0])]);
const int8 = (value: number) => Buffer.from([value]);
const int16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
const int32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value >>> 0);
  return buffer;
};
const int64 = (high: number, low: number) => Buffer.concat([int32(high), int32(low)]);
const tag = (letter: string) => Buffer.from(letter);
type Column = string | null | 'unchanged';
const tuple = (columns: Column[]) =>
  Buffer.concat([
    int16(columns.length),
    ...columns.map((value) => (value === null ? tag('n') : value === 'unchanged' ? tag('u') : Buffer.concat([tag('t'), int32(Buffer.byteLength(value)), Buffer.from(value)]))),
  ]);

/** users (user_id int4 identity, name text, city_id int4, note text) and audit (id int8 identity). */
const usersRelation = Buffer.concat([
  tag('R'), int32(16384), text('app'), text('users'), tag('d'), int16(4),
  int8(1), text('user_id'), int32(23), int32(-1),
  int8(0), text('name'), int32(25), int32(-1),
  int8(0), text('city_id'), int32(23), int32(-1),
  int8(0), text('note'), int32(25), int32(-1),
]); // prettier-ignore
const auditRelation = Buffer.concat([tag('R'), int32(16390), text('app'), text('audit'), tag('f'), int16(1), int8(1), text('id'), int32(20), int32(-1)]);
const messages = {
  begin: Buffer.concat([tag('B'), int64(0x16, 0xb374d848), int64(0x0002_b4c3, 0x1234_5678), int32(0xfffffff0)]),
  commit: Buffer.concat([tag('C'), int8(0), int64(0x16, 0xb374d848), int64(0x16, 0xb374d878), int64(0x0002_b4c3, 0x1234_5678)]),
  insert: Buffer.concat([tag('I'), int32(16384), tag('N'), tuple(['7', 'Ann', null, 'long'])]),
  updateNewOnly: Buffer.concat([tag('U'), int32(16384), tag('N'), tuple(['7', 'Bo', '3', 'unchanged'])]),
  updateKey: Buffer.concat([tag('U'), int32(16384), tag('K'), tuple(['6', null, null, null]), tag('N'), tuple(['7', 'Bo', '3', 'x'])]),
  updateOld: Buffer.concat([tag('U'), int32(16384), tag('O'), tuple(['7', 'Ann', '2', 'long']), tag('N'), tuple(['7', 'Bo', '3', 'unchanged'])]),
  deleteKey: Buffer.concat([tag('D'), int32(16384), tag('K'), tuple(['7', null, null, null])]),
  deleteOld: Buffer.concat([tag('D'), int32(16384), tag('O'), tuple(['7', 'Ann', null, 'long'])]),
  otherTable: Buffer.concat([tag('I'), int32(16390), tag('N'), tuple(['9007199254740993'])]),
  truncate: Buffer.concat([tag('T'), int32(2), int8(0), int32(16384), int32(16390)]),
  message: Buffer.concat([tag('M'), int8(0), int64(0x16, 0xb374d900), text('tc'), int32(Buffer.byteLength('tick é')), Buffer.from('tick é')]),
  transactionalMessage: Buffer.concat([tag('M'), int8(1), int64(0x16, 0xb374d910), text('tc'), int32(3), Buffer.from('bar')]),
};

/** The decoder as the daemon sets it up: users' key and filter columns wanted, audit not a source. */
function decoder(): PgoutputDecoder {
  const decoder = new PgoutputDecoder((schema, table) => (schema === 'app' && table === 'users' ? new Set(['user_id', 'city_id']) : null));
  decoder.decode(usersRelation);
  decoder.decode(auditRelation);
  return decoder;
}

/** The library's own parse of the same bytes, for the decoder to agree with. */
function library(): { parse(buffer: Buffer): Pgoutput.Message } {
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  plugin.parse(usersRelation);
  plugin.parse(auditRelation);
  return plugin;
}

/** A row cut down to the wanted columns, without the columns left undefined (absent and undefined read the same). */
const wantedOf = (row: Record<string, unknown> | null) =>
  row === null ? null : Object.fromEntries(Object.entries(row).filter(([column, value]) => ['user_id', 'city_id'].includes(column) && value !== undefined));
const plain = (row: Record<string, unknown> | null) => (row === null ? null : { ...row });

describe('PgoutputDecoder', () => {
  it('reads the wanted columns of each change as the library does, and leaves the others out', () => {
    const ours = decoder();
    const theirs = library();
    for (const name of ['insert', 'updateNewOnly', 'updateKey', 'updateOld', 'deleteKey', 'deleteOld'] as const) {
      const decoded = ours.decode(messages[name]) as Extract<DecodedMessage, { tag: 'insert' | 'update' | 'delete' }>;
      const parsed = theirs.parse(messages[name]) as Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete;
      expect(decoded.tag, name).toBe(parsed.tag);
      expect(decoded.relation).toMatchObject({ schema: 'app', name: 'users', replicaIdentity: 'default', keyColumns: ['user_id'] });
      if ('new' in decoded && 'new' in parsed) expect(plain(decoded.new), name).toEqual(wantedOf(parsed.new));
      if ('old' in decoded && 'old' in parsed) {
        expect(plain(decoded.old), name).toEqual(wantedOf(parsed.old));
        expect(plain(decoded.key), name).toEqual(wantedOf(parsed.key));
      }
    }
    expect(plain((ours.decode(messages.updateKey) as Extract<DecodedMessage, { tag: 'update' }>).key)).toEqual({ user_id: 6 });
    expect(plain((ours.decode(messages.insert) as Extract<DecodedMessage, { tag: 'insert' }>).new)).toEqual({ user_id: 7, city_id: null });
  });

  it('skips every column of a table that is not a source', () => {
    const decoded = decoder().decode(messages.otherTable) as Extract<DecodedMessage, { tag: 'insert' }>;
    expect(decoded.relation).toMatchObject({ schema: 'app', name: 'audit', replicaIdentity: 'full', keyColumns: ['id'] });
    expect(plain(decoded.new)).toEqual({});
  });

  it("reads BEGIN, COMMIT, TRUNCATE and messages with the library's values, positions as numbers", () => {
    const ours = decoder();
    const theirs = library();
    const begin = theirs.parse(messages.begin) as Pgoutput.MessageBegin;
    expect(ours.decode(messages.begin)).toEqual({ tag: 'begin', xid: begin.xid >>> 0 });
    const commit = theirs.parse(messages.commit) as Pgoutput.MessageCommit;
    expect(ours.decode(messages.commit)).toEqual({ tag: 'commit', commitLsn: parseLsn(commit.commitLsn!), endLsn: parseLsn(commit.commitEndLsn!), commitTime: Number(commit.commitTime) / 1000 });
    const truncate = ours.decode(messages.truncate) as Extract<DecodedMessage, { tag: 'truncate' }>;
    expect(truncate.relations.map((relation) => relation.name)).toEqual(['users', 'audit']);
    const message = theirs.parse(messages.message) as Pgoutput.MessageMessage;
    expect(ours.decode(messages.message)).toEqual({ tag: 'message', transactional: false, lsn: parseLsn(message.messageLsn!), prefix: 'tc', text: 'tick é' });
    expect(ours.decode(messages.transactionalMessage)).toMatchObject({ transactional: true, lsn: 0x16b374d910n, text: 'bar' });
  });

  it('reads a position past 2^53 exactly', () => {
    const commit = Buffer.concat([tag('C'), int8(0), int64(0xffffffff, 0xfffffff0), int64(0xffffffff, 0xffffffff), int64(0, 0)]);
    expect(decoder().decode(commit)).toMatchObject({ commitLsn: 0xfffffffffffffff0n, endLsn: 0xffffffffffffffffn });
  });

  it('refuses a change of a relation the stream did not describe, a cut-off message and an unknown tag', () => {
    const fresh = new PgoutputDecoder(() => null);
    expect(() => fresh.decode(messages.insert)).toThrow(/did not describe/);
    expect(() => decoder().decode(messages.insert.subarray(0, messages.insert.length - 2))).toThrow(/ended early/);
    expect(() => decoder().decode(Buffer.from('Z'))).toThrow(/unknown pgoutput message Z/);
  });
});
