import { createHash } from 'node:crypto';
import type pg from 'pg';
import Cursor from 'pg-cursor';
import type { DbAccess, DbRecordsSpec } from '../lib/core/dbAccess.ts';
import { QueryFailedError } from '../lib/postgres/errors.ts';
import type { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { exactTypeParsers } from '../lib/postgres/typeParsers.ts';

/**
 * The daemon's database reads. A load (a spec without parameters: the whole
 * query) streams through {@link PostgresAccess}, a cursor in a read-only
 * snapshot transaction, so no result is ever held whole; it counts its rows
 * (for progress reports) and stops when `abandonLoads` aborts (a daemon
 * stopping does not wait for a long load: readers keep the data published
 * before it). A refresh (a spec with key arrays) selects at most one batch
 * of keys' records, so it runs as one plain statement, which is its own
 * snapshot: one round trip instead of the cursor's five (BEGIN, bind, fetch,
 * close, ROLLBACK), which is most of a small refresh's time.
 *
 * While {@link session} is set (the daemon's pipeline sets it for a step),
 * every read runs in that session's transaction instead, so that loads,
 * refreshes and `resolve` queries all read the step's one snapshot.
 */
export class RefreshDbAccess implements DbAccess {
  /** Rows the running (or last) load has read so far. */
  streamedRows = 0;
  /** Part of prepared statements' names; bumped to prepare them again. */
  private statementEpoch = 0;
  /** The session whose snapshot every read uses; `null`: each read takes its own. */
  session: pg.ClientBase | null = null;
  /** Per query text, the hash in its prepared statement's name. */
  private readonly queryHashes = new Map<string, string>();
  /** Per refresh spec (query and arguments), where its records come from instead of a query ({@link substitute}). */
  private readonly substitutes = new Map<string, () => AsyncIterable<unknown>>();

  constructor(
    private readonly streaming: PostgresAccess,
    private readonly pool: pg.Pool,
    private readonly abandonLoads?: AbortSignal,
  ) {}

  async *getRecords<R>(spec: DbRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    const substitute = spec.args.length === 0 ? undefined : this.substitutes.get(substituteKey(spec));
    if (substitute !== undefined) {
      yield* substitute() as AsyncIterable<R>;
      return;
    }
    if (spec.args.length === 0 && this.session !== null) {
      yield* this.streamInSession(this.session, spec);
      return;
    }
    if (spec.args.length === 0) {
      this.streamedRows = 0;
      for await (const record of this.streaming.getRecords(spec)) {
        this.abandonLoads?.throwIfAborted();
        this.streamedRows++;
        yield record;
      }
      return;
    }
    yield* await this.readKeys(this.session, spec);
  }

  /**
   * The records of a refresh spec (one with key arrays), read in `session`'s
   * transaction (`null`: a statement of its own), all at once: a refresh
   * selects at most one batch of keys.
   */
  async readKeys<R>(session: pg.ClientBase | null, spec: DbRecordsSpec<R>): Promise<R[]> {
    let rows: Record<string, unknown>[];
    try {
      rows = await this.selectKeys(session, spec);
    } catch (error) {
      throw new QueryFailedError(spec.query, error);
    }
    const parse = spec.recordParser ?? ((row: Record<string, unknown>) => row as R);
    return rows.map(parse);
  }

  /**
   * Until {@link clearSubstitutes}, a read of exactly `spec` (same query, same
   * arguments) yields `records()` instead of querying: records already read
   * in the same snapshot (see `RefreshReadAhead`).
   */
  substitute<R>(spec: DbRecordsSpec<R>, records: () => AsyncIterable<R>): void {
    this.substitutes.set(substituteKey(spec), records);
  }

  /** Forgets every {@link substitute}: they belong to one step's snapshot. */
  clearSubstitutes(): void {
    this.substitutes.clear();
  }

  /** Streams a load through a cursor in `session`'s open transaction, so that it reads that transaction's snapshot. */
  private async *streamInSession<R>(session: pg.ClientBase, spec: DbRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    this.streamedRows = 0;
    const parse = spec.recordParser ?? ((row: Record<string, unknown>) => row as R);
    let cursor: Cursor<Record<string, unknown>>;
    try {
      cursor = session.query(new Cursor<Record<string, unknown>>(spec.query, [...spec.args], { types: exactTypeParsers }));
    } catch (error) {
      throw new QueryFailedError(spec.query, error);
    }
    let failed = false;
    try {
      for (;;) {
        let rows: Record<string, unknown>[];
        try {
          rows = await cursor.read(LOAD_BATCH_ROWS);
        } catch (error) {
          failed = true;
          throw new QueryFailedError(spec.query, error);
        }
        for (const row of rows) {
          this.abandonLoads?.throwIfAborted();
          this.streamedRows++;
          yield parse(row);
        }
        if (rows.length < LOAD_BATCH_ROWS) return;
      }
    } finally {
      // A failed cursor has already synced and has no portal left to close.
      if (!failed) await cursor.close().catch(() => undefined);
    }
  }

  /**
   * A refresh of few keys runs as a prepared statement: planning the cached
   * query's joins costs more than running them for a handful of keys. Larger
   * refreshes are planned for their own key count (a plan made for one key
   * may be the wrong one for ten thousand).
   */
  private async selectKeys(session: pg.ClientBase | null, spec: DbRecordsSpec<unknown>): Promise<Record<string, unknown>[]> {
    const keys = Math.max(...spec.args.map((values) => (Array.isArray(values) ? values.length : 1)));
    const query = { text: spec.query, values: [...spec.args], types: exactTypeParsers };
    const db = session ?? this.pool;
    if (keys > PREPARED_MAX_KEYS) return (await db.query<Record<string, unknown>>(query)).rows;
    if (session !== null) {
      try {
        return (await db.query<Record<string, unknown>>({ ...query, name: this.statementName(spec.query) })).rows;
      } catch (error) {
        // An error aborts the step's transaction, so a stale statement cannot be
        // retried there: the step fails, the table is reloaded, and the next
        // refresh prepares the statement again under a new name.
        if (isStalePreparedStatement(error)) this.statementEpoch++;
        throw error;
      }
    }
    try {
      return (await db.query<Record<string, unknown>>({ ...query, name: this.statementName(spec.query) })).rows;
    } catch (error) {
      if (!isStalePreparedStatement(error)) throw error;
      // The source tables' columns changed since the statement was prepared: prepare it again under a new name.
      this.statementEpoch++;
      return (await db.query<Record<string, unknown>>({ ...query, name: this.statementName(spec.query) })).rows;
    }
  }

  private statementName(query: string): string {
    // Hashed once per query text, not once per refresh.
    let hash = this.queryHashes.get(query);
    if (hash === undefined) this.queryHashes.set(query, (hash = createHash('sha256').update(query).digest('hex').slice(0, 24)));
    return `tablecache_refresh_${hash}_${this.statementEpoch}`;
  }
}

/** What identifies a refresh spec's result in one snapshot: its query and its arguments. */
function substituteKey(spec: DbRecordsSpec<unknown>): string {
  return `${spec.query}\u0000${JSON.stringify(spec.args, (_, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value))}`;
}

/** Rows per cursor read of a load in a step's session. */
const LOAD_BATCH_ROWS = 1000;

/** Refreshes of at most this many keys per key column run as a prepared statement. */
const PREPARED_MAX_KEYS = 64;

/** Postgres refuses to run a prepared statement whose result columns changed (SQLSTATE 0A000, "cached plan must not change result type"). */
function isStalePreparedStatement(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === '0A000';
}
