import pg from 'pg';
import Cursor from 'pg-cursor';
import type { Logger } from 'pino';
import type { DbAccess, DbRecordsSpec } from '../core/dbAccess.ts';
import { InvalidArgumentError, TablecacheError } from '../core/errors.ts';
import { ConnectionFailedError, QueryFailedError, queryExcerpt } from './errors.ts';
import { exactTypeParsers } from './typeParsers.ts';

/** Rows per cursor read when `batchSize` is not given. */
export const DEFAULT_BATCH_SIZE = 1000;

/** Connect timeout of a pool {@link PostgresAccess} creates, unless `connectionTimeoutMillis` is given. */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;

// A cursor's portal already reads one snapshot; the explicit transaction pins
// it for all batches whatever the server's default isolation is, and READ ONLY
// makes a query with side effects fail instead of writing from a cache read.
const BEGIN_SNAPSHOT = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

/** Options of every {@link PostgresAccess}, whoever owns the pool. */
export interface PostgresReadOptions {
  /** Rows fetched per cursor read, and so the most rows held in memory at once. Default {@link DEFAULT_BATCH_SIZE}. */
  batchSize?: number;
  /** Column type mapping for reads. Default {@link exactTypeParsers}. */
  types?: pg.CustomTypesConfig;
  /** Receives warnings about idle pooled connections that failed (the pool replaces them). */
  logger?: Logger;
}

/** Options for a {@link PostgresAccess} that creates, and later ends, its own pool. */
export interface PostgresAccessPoolOptions extends pg.PoolConfig, PostgresReadOptions {
  pool?: never;
}

/** Options for a {@link PostgresAccess} on a pool the caller owns (and ends). */
export interface PostgresAccessExistingPoolOptions extends PostgresReadOptions {
  pool: pg.Pool;
}

/** How to reach Postgres: pool options (`{ connectionString }` or any `pg.PoolConfig`) or an existing `pool`. */
export type PostgresAccessOptions = PostgresAccessPoolOptions | PostgresAccessExistingPoolOptions;

/**
 * Reads records from Postgres for a cached table: the {@link DbAccess} on
 * node-postgres.
 *
 * Every `getRecords` streams its query through a cursor inside a
 * `REPEATABLE READ READ ONLY` transaction, `batchSize` rows per round trip, so
 * a result of any size is read from one consistent snapshot and never held
 * whole in memory. Columns are mapped by {@link exactTypeParsers} (`int8` to
 * `bigint`, `numeric` to exact strings; see docs/postgres-types.md).
 *
 * It creates and owns a `pg.Pool` from pool options, or uses a pool passed as
 * `pool`, which it never ends. `close()` ends an owned pool.
 *
 * @throws {@link InvalidArgumentError} when `batchSize` is not a positive integer.
 * @example
 * ```ts
 * await using access = new PostgresAccess({ connectionString: 'postgres://postgres@127.0.0.1:5432/app' });
 * const spec = new QueryArgsDbRecordsSpec('SELECT * FROM users WHERE user_id = ANY($1)', [[1, 2]]);
 * for await (const user of access.getRecords(spec)) console.log(user);
 * ```
 */
export class PostgresAccess implements DbAccess {
  /** The pool reads check out their connection from. */
  readonly pool: pg.Pool;
  /** Rows fetched per cursor read. */
  readonly batchSize: number;
  private readonly ownsPool: boolean;
  private readonly types: pg.CustomTypesConfig;
  private closed = false;

  constructor(options: PostgresAccessOptions) {
    const { batchSize = DEFAULT_BATCH_SIZE, types = exactTypeParsers, logger, pool, ...poolConfig } = options;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new InvalidArgumentError(`batchSize must be a positive integer number of rows, got ${String(batchSize)}.`);
    }
    this.batchSize = batchSize;
    this.types = types;
    this.ownsPool = pool === undefined;
    this.pool = pool ?? new pg.Pool({ connectionTimeoutMillis: DEFAULT_CONNECTION_TIMEOUT_MS, ...poolConfig, types });
    if (this.ownsPool) {
      // pg.Pool emits 'error' when an idle connection dies (server restart,
      // network); unhandled, that event would crash the process.
      this.pool.on('error', (error) => {
        logger?.warn({ err: error }, 'An idle Postgres connection failed; the pool replaces it on the next read.');
      });
    }
  }

  /**
   * Streams the records `spec` selects, each passed through
   * `spec.recordParser` when it has one (plain row objects otherwise).
   *
   * A connection is checked out on the first `next()` and returned when the
   * iteration ends, also when the consumer stops early (`break`, `return`,
   * an exception): leaving a `for await` loop any way cleans up. An iterator
   * that is neither finished nor returned keeps its connection.
   *
   * An exception thrown by `spec.recordParser` passes through unchanged.
   *
   * @throws {@link ConnectionFailedError} (`TC_CONNECTION_FAILED`) when no
   *   connection can be made, or it is lost during the read (dropped, or
   *   ended by the server with a FATAL error such as a terminated backend).
   * @throws {@link QueryFailedError} (`TC_QUERY_FAILED`) when Postgres rejects
   *   the query or fails while running it.
   * @throws {@link TablecacheError} (`TC_CLOSED`) after {@link close}.
   */
  async *getRecords<R>(spec: DbRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    if (this.closed) {
      throw new TablecacheError('TC_CLOSED', `PostgresAccess is closed; cannot run ${spec.toString()}. Create a new one.`);
    }
    const client = await this.checkOut();
    const read = new SnapshotRead(client, spec.query);
    let pending: Promise<Record<string, unknown>[]> | undefined;
    try {
      await read.begin();
      const cursor = read.open(spec.args, this.types);
      const parse = spec.recordParser ?? ((row: Record<string, unknown>) => row as R);
      let next = read.next(cursor, this.batchSize);
      for (;;) {
        pending = next;
        const rows = await next;
        pending = undefined;
        const more = rows.length === this.batchSize;
        // Ask for the next batch before handing out this one, so Postgres
        // produces it while the consumer works: at most two batches in memory.
        if (more) {
          next = read.next(cursor, this.batchSize);
          // Until the loop awaits it, a failure of the read-ahead (the server
          // went away) has no handler yet and would count as unhandled.
          next.catch(() => undefined);
          pending = next;
        }
        for (const row of rows) yield parse(row);
        if (!more) return;
      }
    } finally {
      // A consumer that stops early leaves a read in flight; it must settle
      // before the cursor is closed, and its failure is no longer anyone's.
      await pending?.catch(() => undefined);
      await read.end();
    }
  }

  /** Ends the pool if this access created it; idempotent. Waits for running reads to finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool.end();
  }

  /** Same as {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async checkOut(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw new ConnectionFailedError(connectionTarget(this.pool.options), 'Could not connect to', error);
    }
  }
}

/**
 * One cursor read on a checked-out client, from BEGIN to release, keeping
 * track of whether the connection is still usable so that it goes back to the
 * pool clean or gets discarded.
 */
class SnapshotRead {
  private lostConnection: Error | undefined;
  private cursor: Cursor | undefined;
  private cursorFailed = false;
  private readonly onClientError = (error: Error): void => {
    this.lostConnection = error;
  };

  constructor(
    private readonly client: pg.PoolClient,
    private readonly query: string,
  ) {
    // While checked out a client has no pool listener, and an unhandled
    // 'error' event (connection dropped) would crash the process.
    client.on('error', this.onClientError);
  }

  async begin(): Promise<void> {
    await this.translateErrors(this.client.query(BEGIN_SNAPSHOT));
  }

  open(args: readonly unknown[], types: pg.CustomTypesConfig): Cursor<Record<string, unknown>> {
    let cursor: Cursor<Record<string, unknown>>;
    try {
      // Serialises the arguments, which throws for values pg cannot send.
      cursor = new Cursor(this.query, [...args], { types });
    } catch (error) {
      throw new QueryFailedError(this.query, error);
    }
    this.cursor = cursor;
    return this.client.query(cursor);
  }

  async next<Row>(cursor: Cursor<Row>, rows: number): Promise<Row[]> {
    try {
      return await this.translateErrors(cursor.read(rows));
    } catch (error) {
      this.cursorFailed = true;
      throw error;
    }
  }

  /** Closes the cursor and the transaction, then returns the client (or has the pool discard it). */
  async end(): Promise<void> {
    let unusable: Error | undefined = this.lostConnection;
    if (unusable === undefined) {
      try {
        // A failed cursor has already synced and has no portal left to close.
        if (this.cursor !== undefined && !this.cursorFailed) await this.cursor.close();
        // Nothing to commit: the transaction is read only.
        await this.client.query('ROLLBACK');
      } catch (error) {
        unusable = error instanceof Error ? error : new Error(String(error));
      }
    }
    this.client.release(unusable);
    this.client.removeListener('error', this.onClientError);
  }

  private async translateErrors<T>(step: Promise<T>): Promise<T> {
    try {
      return await step;
    } catch (error) {
      // A FATAL (or PANIC) server error ends the session: the query did not
      // fail, the connection did (terminated backend, server shutdown).
      const sessionEnded =
        this.lostConnection !== undefined ||
        (error instanceof pg.DatabaseError && (error.severity === 'FATAL' || error.severity === 'PANIC'));
      if (sessionEnded) {
        throw new ConnectionFailedError(
          connectionTarget(this.client),
          `Lost the connection while reading "${queryExcerpt(this.query)}" from`,
          error,
        );
      }
      throw new QueryFailedError(this.query, error);
    }
  }
}

/**
 * Where a pool or client connects. pg resolves host and port from explicit
 * options, the connection string, PG* environment variables and its defaults;
 * a never-connected Client (no socket is opened) exposes that resolution.
 */
function connectionTarget(config: pg.ClientConfig | pg.Client): { host: string; port: number; password?: string } {
  const client = config instanceof pg.Client ? config : new pg.Client(config);
  return {
    host: client.host,
    port: client.port,
    ...(typeof client.password === 'string' ? { password: client.password } : {}),
  };
}
