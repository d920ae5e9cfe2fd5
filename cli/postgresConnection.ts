import pg from 'pg';
import { TablecacheError } from '../lib/core/errors.ts';
import { redactUrl } from '../daemon/config/redactUrl.ts';

/** Postgres could not be reached or refused the login. Code `TC_CONNECTION_FAILED`; the message names the server and the cause. */
export class PostgresConnectionError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_CONNECTION_FAILED', message, options);
  }
}

const CONNECT_TIMEOUT_MS = 10_000;

function describeTarget(url: string): string {
  try {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.slice(1)) || '(default)';
    const user = decodeURIComponent(parsed.username) || '(default)';
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'} (database ${database}, user ${user})`;
  } catch {
    return redactUrl(url);
  }
}

/**
 * Runs `use` with a connected client and always closes it.
 *
 * @throws {@link PostgresConnectionError} naming host, port, database and user, and the cause
 * (refused, unknown host, timeout, authentication, missing database), never the password.
 */
export async function withPostgresClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'tablecache-cli' });
  // A server that goes away later reports through 'error'; without a listener Node would crash.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    const cause = error as Error & { code?: string };
    const code = cause.code && !cause.message.includes(cause.code) ? ` (${cause.code})` : '';
    throw new PostgresConnectionError(`Cannot connect to Postgres at ${describeTarget(url)}: ${cause.message}${code}`, { cause: error });
  }
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
