import { PAYLOAD_VERSION, type ChangePayload, type KeyTuple, type KeyValue } from '../../sql-triggers/payload.ts';
import { formatQualifiedName } from '../../sql-triggers/identifiers.ts';
import type { SourceTableSpec } from '../../sql-triggers/triggerSpec.ts';
import type { Lsn } from './lsn.ts';
import type { DecodedMessage, DecodedRelation, DecodedRow } from './pgoutputDecoder.ts';

/** A logical decoding message (`pg_logical_emit_message`) on the stream. */
export interface StreamMessage {
  readonly prefix: string;
  /** The content as UTF-8 text. */
  readonly text: string;
  /** Where it is in the WAL. */
  readonly lsn: Lsn;
}

/** One committed transaction as the daemon needs it: its changes as trigger-style payloads. */
export interface CommittedTransaction {
  /** The transaction id as the stream carries it (32 bits). */
  readonly xid: number;
  /** Where its commit record starts: a flush position at or below it replays the transaction. */
  readonly commitLsn: Lsn;
  /** Where its commit record ends: acknowledging it confirms the transaction. */
  readonly endLsn: Lsn;
  /** One payload per changed source table (xid: the 64-bit id from `xidText`, else left empty). */
  readonly payloads: ChangePayload[];
  /** Transactional messages it emitted (barriers), delivered after its changes. */
  readonly messages: StreamMessage[];
}

/** What one transaction did to one source table, gathered until its commit. */
interface SourceChanges {
  readonly source: SourceTableSpec;
  /** Distinct keys by their JSON text. */
  readonly keys: Map<string, KeyTuple>;
  /** TRUNCATE: the tables it feeds are reloaded. */
  truncated: boolean;
  /** More keys than the bound, or keys the tuples do not carry: reload instead. */
  coarse: boolean;
}

/** Options of a {@link PgoutputTransactions}. */
export interface PgoutputTransactionsOptions {
  /** The source tables and their key columns and column filters (the triggers' spec for the same configuration). */
  readonly sources: readonly SourceTableSpec[];
  /** Keys of one source table in one transaction beyond which it becomes one reload (`triggers.maxKeysPerStatement`). */
  readonly maxKeys: number;
  /** Called for a change it cannot map by keys (once per relation and reason), for a log line. */
  readonly onCoarse?: (source: string, why: string) => void;
  /** The payloads' `xid`: the 64-bit id (decimal text) of a transaction's 32-bit one; absent, the payloads carry ''. */
  readonly xidText?: (xid: number) => string;
}

/**
 * Assembles the pgoutput messages of the replication stream (protocol
 * version 1: whole transactions, BEGIN … COMMIT, in commit order) into
 * {@link CommittedTransaction}s carrying the same payloads as the triggers
 * send, so that one mapper serves both change sources:
 *
 * - INSERT: the new row's key; DELETE: the old row's key (the replica
 *   identity, or the whole old row with `REPLICA IDENTITY FULL`);
 * - UPDATE: the new key, and the old key when it differs (sent for a changed
 *   identity, or always with FULL); a source keyed by columns outside its
 *   replica identity cannot tell the old key without FULL: the tables it
 *   feeds are reloaded instead (`capture install` asks for FULL there);
 * - a column filter (`columns`) skips an UPDATE whose key and filtered
 *   columns kept their values, when the old row is known (FULL); without
 *   it every UPDATE is reported;
 * - TRUNCATE: a `T` payload; more than `maxKeys` keys: an `X` payload.
 *
 * Non-transactional messages are handed over at once (they are ticks);
 * transactional ones with their transaction's commit. Pure: no I/O.
 */
export class PgoutputTransactions {
  private readonly sources = new Map<string, SourceTableSpec>();
  /** Per source table, the columns its changes are read by: its keys and column filter. */
  private readonly columns = new Map<string, ReadonlySet<string>>();
  private readonly reported = new Set<string>();
  private current: { xid: number; changes: Map<string, SourceChanges>; messages: StreamMessage[] } | null = null;
  /** Relations' canonical names (a relation is described once per session and kept by the decoder). */
  private readonly names = new WeakMap<DecodedRelation, string>();

  constructor(private readonly options: PgoutputTransactionsOptions) {
    for (const source of options.sources) {
      this.sources.set(formatQualifiedName(source), source);
      this.columns.set(formatQualifiedName(source), new Set([...source.keyColumns, ...(source.columns ?? [])]));
    }
  }

  /**
   * The columns of table `schema`.`table` its changes are read by (the
   * decoder skips the others), or `null` when it is not a source: its
   * changes are ignored.
   */
  columnsOf(schema: string, table: string): ReadonlySet<string> | null {
    return this.columns.get(formatQualifiedName({ schema, table })) ?? null;
  }

  /** Whether a transaction's BEGIN was seen and its COMMIT not yet. */
  get inTransaction(): boolean {
    return this.current !== null;
  }

  /** Forgets a transaction the stream broke off in (it is sent again from the slot). */
  reset(): void {
    this.current = null;
  }

  /** Takes one decoded message; returns a committed transaction or a non-transactional message when one is complete. */
  take(message: DecodedMessage): CommittedTransaction | StreamMessage | null {
    switch (message.tag) {
      case 'begin':
        this.current = { xid: message.xid, changes: new Map(), messages: [] };
        return null;
      case 'commit':
        return this.commit(message);
      case 'message': {
        const text: StreamMessage = { prefix: message.prefix, text: message.text, lsn: message.lsn };
        if (message.transactional && this.current !== null) {
          this.current.messages.push(text);
          return null;
        }
        return text;
      }
      case 'insert':
        this.addRow(message.relation, message.new, null);
        return null;
      case 'update':
        this.addUpdate(message.relation, message.key, message.old, message.new);
        return null;
      case 'delete':
        this.addRow(message.relation, null, message.old ?? message.key);
        return null;
      case 'truncate':
        for (const relation of message.relations) {
          const changes = this.changesOf(relation);
          if (changes !== null) changes.truncated = true;
        }
        return null;
      default:
        return null;
    }
  }

  private commit(message: Extract<DecodedMessage, { tag: 'commit' }>): CommittedTransaction | null {
    const current = this.current;
    this.current = null;
    if (current === null) return null;
    const payloads: ChangePayload[] = [];
    const ts = message.commitTime;
    const xid = current.changes.size === 0 ? '' : (this.options.xidText?.(current.xid) ?? '');
    for (const [table, changes] of current.changes) {
      // Whole literals, not a shared head spread into each: V8 builds `{ ...head, op, … }` on a slow
      // path, which cost about 6 µs of CPU per transaction (three quarters of this class's time).
      if (changes.truncated) payloads.push({ v: PAYLOAD_VERSION, t: table, xid, ts, op: 'T' });
      else if (changes.coarse) payloads.push({ v: PAYLOAD_VERSION, t: table, xid, ts, op: 'X', reason: 'too_large' });
      else if (changes.keys.size > 0) payloads.push({ v: PAYLOAD_VERSION, t: table, xid, ts, op: 'U', c: changes.source.keyColumns, k: [...changes.keys.values()] });
    }
    return {
      xid: current.xid,
      commitLsn: message.commitLsn,
      endLsn: message.endLsn,
      payloads,
      messages: current.messages,
    };
  }

  private changesOf(relation: DecodedRelation): SourceChanges | null {
    if (this.current === null) return null;
    const name = this.nameOf(relation);
    const source = this.sources.get(name);
    if (source === undefined) return null;
    let changes = this.current.changes.get(name);
    if (changes === undefined) this.current.changes.set(name, (changes = { source, keys: new Map(), truncated: false, coarse: false }));
    return changes;
  }

  /** The canonical name of a relation (as in payloads), formatted once per relation. */
  private nameOf(relation: DecodedRelation): string {
    let name = this.names.get(relation);
    if (name === undefined) this.names.set(relation, (name = formatQualifiedName({ schema: relation.schema, table: relation.name })));
    return name;
  }

  private addUpdate(relation: DecodedRelation, key: DecodedRow | null, old: DecodedRow | null, newRow: DecodedRow): void {
    const changes = this.changesOf(relation);
    if (changes === null || changes.coarse || changes.truncated) return;
    const filter = changes.source.columns;
    if (filter !== undefined && old !== null) {
      const compared = [...changes.source.keyColumns, ...filter];
      if (compared.every((column) => sameValue(old[column], newRow[column]))) return;
    }
    this.addRow(relation, newRow, old ?? key ?? unchangedIdentity(relation, newRow));
  }

  /** Adds the keys of a row's new and old versions (either may be absent). */
  private addRow(relation: DecodedRelation, newRow: DecodedRow | null, oldRow: DecodedRow | null): void {
    const changes = this.changesOf(relation);
    if (changes === null || changes.coarse || changes.truncated) return;
    if (!this.addKey(changes, relation, newRow) || !this.addKey(changes, relation, oldRow)) return;
    if (changes.keys.size > this.options.maxKeys) this.giveUp(changes, relation, null);
  }

  /** Adds a row's key; `false` when the row lacks a key column (the changes became coarse). */
  private addKey(changes: SourceChanges, relation: DecodedRelation, row: DecodedRow | null): boolean {
    if (row === null) return true;
    const tuple: KeyValue[] = [];
    for (const column of changes.source.keyColumns) {
      const value = row[column];
      if (value === undefined) {
        this.giveUp(changes, relation, `its key column ${column} is not in the replica identity, so the old key of an UPDATE or DELETE is unknown; set REPLICA IDENTITY FULL (tablecache capture install)`);
        return false;
      }
      tuple.push(value as KeyValue);
    }
    changes.keys.set(JSON.stringify(tuple), tuple);
    return true;
  }

  private giveUp(changes: SourceChanges, relation: DecodedRelation, why: string | null): void {
    changes.coarse = true;
    changes.keys.clear();
    if (why === null) return;
    const name = this.nameOf(relation);
    if (this.reported.has(`${name}\n${why}`)) return;
    this.reported.add(`${name}\n${why}`);
    this.options.onCoarse?.(name, why);
  }
}

/**
 * An UPDATE that kept the replica identity sends no old key: the identity
 * columns of the new row are the old ones too. Other columns are unknown
 * (left out, so that a source keyed by them gives up).
 */
function unchangedIdentity(relation: DecodedRelation, newRow: DecodedRow): DecodedRow | null {
  if (relation.keyColumns.length === 0) return null;
  const identity: DecodedRow = Object.create(null) as DecodedRow;
  for (const column of relation.keyColumns) identity[column] = newRow[column];
  return identity;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}
