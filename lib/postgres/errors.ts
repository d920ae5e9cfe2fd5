import pg from 'pg';
import { TablecacheError } from '../core/errors.ts';

const QUERY_EXCERPT_LENGTH = 200;

/** The query shortened to what an error message can carry, on one line. */
export function queryExcerpt(query: string): string {
  const oneLine = query.replace(/\s+/g, ' ').trim();
  return oneLine.length > QUERY_EXCERPT_LENGTH ? `${oneLine.slice(0, QUERY_EXCERPT_LENGTH)}…` : oneLine;
}

function causeMessage(cause: unknown): string {
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    // Node reports a refused connection to a host with several addresses
    // (localhost: ::1 and 127.0.0.1) as an AggregateError with an empty message.
    return cause.errors.map(causeMessage).join('; ');
  }
  if (cause instanceof Error) return cause.message || cause.name;
  return String(cause);
}

/**
 * A query sent by {@link PostgresAccess} failed: Postgres rejected it (a syntax
 * error, a missing table, a failed cast, a statement timeout, …) or the driver
 * could not send it.
 *
 * `code` is `TC_QUERY_FAILED`; the message names the query (its first 200
 * characters) and the server's message. When Postgres itself reported the
 * error, its fields are carried as properties (`sqlState` is Postgres' error
 * code, named so because `code` is the tablecache code). The original error is
 * the `cause`.
 *
 * @example
 * ```ts
 * try { for await (const r of access.getRecords(spec)) … }
 * catch (e) { if (e instanceof QueryFailedError && e.sqlState === '42P01') … }
 * ```
 */
export class QueryFailedError extends TablecacheError {
  /** The full text of the failed query. */
  readonly query: string;
  /** Postgres' SQLSTATE (e.g. `42601` for a syntax error), when the server reported the error. */
  readonly sqlState: string | undefined;
  /** Postgres' DETAIL line, if any. */
  readonly detail: string | undefined;
  /** Postgres' HINT line, if any. */
  readonly hint: string | undefined;
  /** 1-based character position in the query the error refers to, if Postgres gave one. */
  readonly position: number | undefined;

  constructor(query: string, cause: unknown) {
    const server = cause instanceof pg.DatabaseError ? cause : undefined;
    const sqlState = server?.code;
    const position = server?.position === undefined ? undefined : Number(server.position);
    const where = [
      sqlState === undefined ? undefined : `SQLSTATE ${sqlState}`,
      position === undefined ? undefined : `at character ${position}`,
    ].filter((part) => part !== undefined);
    super(
      'TC_QUERY_FAILED',
      `Query failed: ${causeMessage(cause)}${where.length > 0 ? ` (${where.join(', ')})` : ''}` +
        `${server?.detail ? `; detail: ${server.detail}` : ''}. Query: "${queryExcerpt(query)}"`,
      { cause },
    );
    this.query = query;
    this.sqlState = sqlState;
    this.detail = server?.detail;
    this.hint = server?.hint;
    this.position = position;
  }
}

/**
 * {@link PostgresAccess} could not connect to Postgres, or lost the connection
 * while reading (the network dropped, or the server ended the session with a
 * FATAL error such as an administrator terminating the backend).
 *
 * `code` is `TC_CONNECTION_FAILED`; the message names `host:port` and the
 * cause (refused, timed out, authentication failed, …), never the password.
 * The original error is the `cause`.
 */
export class ConnectionFailedError extends TablecacheError {
  /** The host (or Unix socket directory) the connection was made to. */
  readonly host: string;
  /** The port the connection was made to. */
  readonly port: number;

  constructor(
    target: { host: string; port: number; password?: string | undefined },
    situation: string,
    cause: unknown,
  ) {
    super(
      'TC_CONNECTION_FAILED',
      redact(`${situation} Postgres at ${target.host}:${target.port}: ${causeMessage(cause)}`, target.password),
      { cause },
    );
    this.host = target.host;
    this.port = target.port;
  }
}

/** Driver messages do not normally quote the password; this makes sure ours never does. */
function redact(message: string, password: string | undefined): string {
  return password ? message.replaceAll(password, '***') : message;
}
