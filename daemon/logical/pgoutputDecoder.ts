import pg from 'pg';
import type { Lsn } from './lsn.ts';

/** A row's decoded columns by name: only the columns asked for, and only those the tuple carries. */
export type DecodedRow = Record<string, unknown>;

/** A relation (table) as the stream described it, before its first change in a session. */
export interface DecodedRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  /** Its replica identity's columns (all of them with FULL). */
  readonly keyColumns: readonly string[];
  /** Per column in tuple order: its name and text parser, or `null` when nobody needs it (left undecoded). */
  readonly columns: readonly ({ readonly name: string; readonly parse: (text: string) => unknown } | null)[];
}

/** One pgoutput message (protocol version 1), decoded as far as the daemon needs. */
export type DecodedMessage =
  | { readonly tag: 'begin'; readonly xid: number }
  | { readonly tag: 'commit'; readonly commitLsn: Lsn; readonly endLsn: Lsn; /** Epoch ms. */ readonly commitTime: number }
  | { readonly tag: 'relation'; readonly relation: DecodedRelation }
  | { readonly tag: 'insert'; readonly relation: DecodedRelation; readonly new: DecodedRow }
  | { readonly tag: 'update'; readonly relation: DecodedRelation; readonly key: DecodedRow | null; readonly old: DecodedRow | null; readonly new: DecodedRow }
  | { readonly tag: 'delete'; readonly relation: DecodedRelation; readonly key: DecodedRow | null; readonly old: DecodedRow | null }
  | { readonly tag: 'truncate'; readonly relations: readonly DecodedRelation[] }
  | { readonly tag: 'message'; readonly transactional: boolean; readonly lsn: Lsn; readonly prefix: string; readonly text: string }
  /** Type and origin messages: nothing the daemon uses. */
  | { readonly tag: 'other' };

/**
 * Which columns of a relation are decoded: `null` for a relation the
 * daemon does not cache (its tuples are skipped), else the column names
 * (the keys and column filters of its source).
 */
export type WantedColumns = (schema: string, table: string) => ReadonlySet<string> | null;

/** Microseconds from the Unix epoch to the Postgres epoch (2000-01-01). */
const POSTGRES_EPOCH_US = 946_684_800_000_000;
const TWO_TO_32 = 4_294_967_296;

/**
 * A decoder of `pgoutput` messages (protocol version 1) that does only what
 * the daemon uses, on the path of every change: it decodes the columns a
 * source needs (its keys and column filters) and skips the others and
 * every tuple of a table nobody caches, and reads positions as numbers, not
 * text. pg-logical-replication's own parser decodes every column of every
 * row and prints each position as text, which the daemon parsed back: about
 * a third of the CPU it spent per received transaction.
 *
 * Column values are parsed by pg's type parsers, as the library did, so
 * keys compare the same. One decoder per replication session: relations
 * are described again in each.
 *
 * @throws `Error` for a message it cannot read (the stream reconnects).
 */
export class PgoutputDecoder {
  private readonly relations = new Map<number, DecodedRelation>();
  private buffer: Buffer = Buffer.alloc(0);
  private at = 0;

  constructor(private readonly wanted: WantedColumns) {}

  /** Decodes one message (the payload of an XLogData, after its 25-byte header). */
  decode(buffer: Buffer): DecodedMessage {
    this.buffer = buffer;
    this.at = 1;
    switch (buffer[0]) {
      case 0x42 /* B */: {
        this.skip(16); // final LSN, commit time
        return { tag: 'begin', xid: this.uint32() };
      }
      case 0x43 /* C */: {
        this.skip(1); // flags
        const commitLsn = this.lsn();
        const endLsn = this.lsn();
        const high = this.uint32();
        const commitTime = (high * TWO_TO_32 + this.uint32() + POSTGRES_EPOCH_US) / 1000;
        return { tag: 'commit', commitLsn, endLsn, commitTime };
      }
      case 0x52 /* R */:
        return { tag: 'relation', relation: this.relation() };
      case 0x49 /* I */: {
        const relation = this.relationOf(this.uint32());
        this.skip(1); // N
        return { tag: 'insert', relation, new: this.tuple(relation, null) };
      }
      case 0x55 /* U */: {
        const relation = this.relationOf(this.uint32());
        let key: DecodedRow | null = null;
        let old: DecodedRow | null = null;
        let kind = this.uint8();
        if (kind === 0x4b /* K */) key = this.keyTuple(relation);
        else if (kind === 0x4f /* O */) old = this.tuple(relation, null);
        if (kind !== 0x4e /* N */) kind = this.uint8();
        if (kind !== 0x4e) throw new Error(`unknown pgoutput UPDATE part ${String.fromCharCode(kind)}`);
        return { tag: 'update', relation, key, old, new: this.tuple(relation, old) };
      }
      case 0x44 /* D */: {
        const relation = this.relationOf(this.uint32());
        const kind = this.uint8();
        if (kind === 0x4b /* K */) return { tag: 'delete', relation, key: this.keyTuple(relation), old: null };
        if (kind === 0x4f /* O */) return { tag: 'delete', relation, key: null, old: this.tuple(relation, null) };
        throw new Error(`unknown pgoutput DELETE part ${String.fromCharCode(kind)}`);
      }
      case 0x54 /* T */: {
        const count = this.uint32();
        this.skip(1); // cascade, restart identity
        const relations: DecodedRelation[] = [];
        for (let i = 0; i < count; i++) relations.push(this.relationOf(this.uint32()));
        return { tag: 'truncate', relations };
      }
      case 0x4d /* M */: {
        const transactional = (this.uint8() & 1) === 1;
        const lsn = this.lsn();
        const prefix = this.string();
        const length = this.uint32();
        this.need(length);
        const text = buffer.toString('utf8', this.at, this.at + length);
        this.at += length;
        return { tag: 'message', transactional, lsn, prefix, text };
      }
      case 0x59 /* Y */:
      case 0x4f /* O */:
        return { tag: 'other' };
      default:
        throw new Error(`unknown pgoutput message ${String.fromCharCode(buffer[0] ?? 0)}`);
    }
  }

  private relation(): DecodedRelation {
    const oid = this.uint32();
    const schema = this.string();
    const name = this.string();
    const identity = this.uint8();
    const replicaIdentity = identity === 0x64 ? 'default' : identity === 0x6e ? 'nothing' : identity === 0x66 ? 'full' : identity === 0x69 ? 'index' : null;
    if (replicaIdentity === null) throw new Error(`unknown replica identity ${String.fromCharCode(identity)}`);
    const wanted = this.wanted(schema, name);
    const count = this.uint16();
    const keyColumns: string[] = [];
    const columns: DecodedRelation['columns'][number][] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.uint8();
      const column = this.string();
      const typeOid = this.uint32();
      this.skip(4); // type modifier
      if ((flags & 1) === 1) keyColumns.push(column);
      columns.push(wanted?.has(column) === true ? { name: column, parse: pg.types.getTypeParser(typeOid, 'text') as (text: string) => unknown } : null);
    }
    const relation: DecodedRelation = { oid, schema, name, replicaIdentity, keyColumns, columns };
    this.relations.set(oid, relation);
    return relation;
  }

  private relationOf(oid: number): DecodedRelation {
    const relation = this.relations.get(oid);
    if (relation === undefined) throw new Error(`a pgoutput change of relation ${oid}, which the stream did not describe`);
    return relation;
  }

  /**
   * A tuple's wanted columns: a NULL as `null`, an unchanged TOASTed value
   * as the old row's (or left out when unknown); `old` is the old row of an
   * UPDATE, when sent.
   */
  private tuple(relation: DecodedRelation, old: DecodedRow | null): DecodedRow {
    const count = this.uint16();
    const row: DecodedRow = Object.create(null) as DecodedRow;
    for (let i = 0; i < count; i++) {
      const column = relation.columns[i];
      const kind = this.uint8();
      if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
        const length = this.uint32();
        this.need(length);
        // Binary values are never asked for (protocol version 1 sends text).
        if (column != null) row[column.name] = kind === 0x74 ? column.parse(this.buffer.toString('utf8', this.at, this.at + length)) : this.buffer.subarray(this.at, this.at + length);
        this.at += length;
      } else if (kind === 0x6e /* n */) {
        if (column != null) row[column.name] = null;
      } else if (kind === 0x75 /* u */) {
        if (column != null && old !== null && column.name in old) row[column.name] = old[column.name];
      } else {
        throw new Error(`unknown pgoutput column kind ${String.fromCharCode(kind)}`);
      }
    }
    return row;
  }

  /** The replica identity's columns of a key tuple (the other columns are sent as NULLs and mean nothing). */
  private keyTuple(relation: DecodedRelation): DecodedRow {
    const tuple = this.tuple(relation, null);
    const key: DecodedRow = Object.create(null) as DecodedRow;
    for (const column of relation.keyColumns) {
      const value = tuple[column];
      if (value !== undefined && value !== null) key[column] = value;
    }
    return key;
  }

  private lsn(): Lsn {
    const high = this.uint32();
    const low = this.uint32();
    // Exact as a double below 2^53 (8 PiB of WAL): one BigInt instead of a shift and an or.
    return high < 0x200000 ? BigInt(high * TWO_TO_32 + low) : (BigInt(high) << 32n) | BigInt(low);
  }

  private string(): string {
    const end = this.buffer.indexOf(0, this.at);
    if (end < 0) throw new Error('a pgoutput message ended inside a string');
    const text = this.buffer.toString('utf8', this.at, end);
    this.at = end + 1;
    return text;
  }

  private uint8(): number {
    this.need(1);
    return this.buffer[this.at++]!;
  }

  private uint16(): number {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }

  private uint32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  private skip(bytes: number): void {
    this.need(bytes);
    this.at += bytes;
  }

  private need(bytes: number): void {
    if (this.at + bytes > this.buffer.length) throw new Error('a pgoutput message ended early');
  }
}
