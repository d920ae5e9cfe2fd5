import type { Pgoutput } from 'pg-logical-replication';
import { PAYLOAD_VERSION, type ChangePayload, type KeyTuple, type KeyValue } from '../../sql-triggers/payload.ts';
import { formatQualifiedName } from '../../sql-triggers/identifiers.ts';
import type { SourceTableSpec } from '../../sql-triggers/triggerSpec.ts';
import { parseLsn, type Lsn } from './lsn.ts';

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
  /** One payload per changed source table (xid left empty: the receiver fills in the 64-bit id). */
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
  private readonly reported = new Set<string>();
  private current: { xid: number; changes: Map<string, SourceChanges>; messages: StreamMessage[] } | null = null;

  constructor(private readonly options: PgoutputTransactionsOptions) {
    for (const source of options.sources) this.sources.set(formatQualifiedName(source), source);
  }

  /** Whether a transaction's BEGIN was seen and its COMMIT not yet. */
  get inTransaction(): boolean {
    return this.current !== null;
  }

  /** Forgets a transaction the stream broke off in (it is sent again from the slot). */
  reset(): void {
    this.current = null;
  }

  /**
   * Takes one decoded message (`lsn`: where the stream says it is); returns a
   * committed transaction or a non-transactional message when one is complete.
   */
  take(message: Pgoutput.Message, lsn: Lsn): CommittedTransaction | StreamMessage | null {
    switch (message.tag) {
      case 'begin':
        this.current = { xid: message.xid, changes: new Map(), messages: [] };
        return null;
      case 'commit':
        return this.commit(message, lsn);
      case 'message': {
        const text: StreamMessage = { prefix: message.prefix, text: Buffer.from(message.content).toString('utf8'), lsn: message.messageLsn === null ? lsn : parseLsn(message.messageLsn) };
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
        this.addUpdate(message);
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

  private commit(message: Pgoutput.MessageCommit, lsn: Lsn): CommittedTransaction | null {
    const current = this.current;
    this.current = null;
    if (current === null) return null;
    const payloads: ChangePayload[] = [];
    const ts = Number(message.commitTime) / 1000;
    for (const [table, changes] of current.changes) {
      // Whole literals, not a shared head spread into each: V8 builds `{ ...head, op, … }` on a slow
      // path, which cost about 6 µs of CPU per transaction (three quarters of this class's time).
      if (changes.truncated) payloads.push({ v: PAYLOAD_VERSION, t: table, xid: '', ts, op: 'T' });
      else if (changes.coarse) payloads.push({ v: PAYLOAD_VERSION, t: table, xid: '', ts, op: 'X', reason: 'too_large' });
      else if (changes.keys.size > 0) payloads.push({ v: PAYLOAD_VERSION, t: table, xid: '', ts, op: 'U', c: changes.source.keyColumns, k: [...changes.keys.values()] });
    }
    return {
      xid: current.xid,
      commitLsn: message.commitLsn === null ? lsn : parseLsn(message.commitLsn),
      endLsn: message.commitEndLsn === null ? lsn : parseLsn(message.commitEndLsn),
      payloads,
      messages: current.messages,
    };
  }

  private changesOf(relation: Pgoutput.MessageRelation): SourceChanges | null {
    if (this.current === null) return null;
    const name = formatQualifiedName({ schema: relation.schema, table: relation.name });
    const source = this.sources.get(name);
    if (source === undefined) return null;
    let changes = this.current.changes.get(name);
    if (changes === undefined) this.current.changes.set(name, (changes = { source, keys: new Map(), truncated: false, coarse: false }));
    return changes;
  }

  private addUpdate(message: Pgoutput.MessageUpdate): void {
    const changes = this.changesOf(message.relation);
    if (changes === null || changes.coarse || changes.truncated) return;
    const filter = changes.source.columns;
    if (filter !== undefined && message.old !== null) {
      const compared = [...changes.source.keyColumns, ...filter];
      if (compared.every((column) => sameValue(message.old![column], message.new[column]))) return;
    }
    this.addRow(message.relation, message.new, message.old ?? message.key ?? unchangedIdentity(message.relation, message.new));
  }

  /** Adds the keys of a row's new and old versions (either may be absent). */
  private addRow(relation: Pgoutput.MessageRelation, newRow: Record<string, unknown> | null, oldRow: Record<string, unknown> | null): void {
    const changes = this.changesOf(relation);
    if (changes === null || changes.coarse || changes.truncated) return;
    for (const row of [newRow, oldRow]) {
      if (row === null) continue;
      const tuple: KeyValue[] = [];
      for (const column of changes.source.keyColumns) {
        const value = row[column];
        if (value === undefined) {
          this.giveUp(changes, relation, `its key column ${column} is not in the replica identity, so the old key of an UPDATE or DELETE is unknown; set REPLICA IDENTITY FULL (tablecache capture install)`);
          return;
        }
        tuple.push(value as KeyValue);
      }
      changes.keys.set(JSON.stringify(tuple), tuple);
    }
    if (changes.keys.size > this.options.maxKeys) this.giveUp(changes, relation, null);
  }

  private giveUp(changes: SourceChanges, relation: Pgoutput.MessageRelation, why: string | null): void {
    changes.coarse = true;
    changes.keys.clear();
    if (why === null) return;
    const name = formatQualifiedName({ schema: relation.schema, table: relation.name });
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
function unchangedIdentity(relation: Pgoutput.MessageRelation, newRow: Record<string, unknown>): Record<string, unknown> | null {
  if (relation.keyColumns.length === 0) return null;
  const identity: Record<string, unknown> = {};
  for (const column of relation.keyColumns) identity[column] = newRow[column];
  return identity;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}
