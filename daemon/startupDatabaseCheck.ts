import pg from 'pg';
import { abortableDelay } from '../lib/core/abortableDelay.ts';
import { TablecacheError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/logger.ts';
import { ConnectionFailedError } from '../lib/postgres/errors.ts';
import { checkConfigAgainstDatabase } from './config/checkConfigAgainstDatabase.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';
import { retryDelayMs } from '../lib/core/retryBackoff.ts';

/** Options of {@link checkDatabaseAtStart}. */
export interface StartupDatabaseCheckOptions {
  readonly logger: Logger;
  /** Stops waiting: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called before every retry with what failed (for readiness reasons). */
  readonly onRetry?: (attempt: number, cause: string, retryInMs: number) => void;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * SQLSTATEs of a refused connection that no wait heals: a wrong password or
 * an unknown role (class 28), an unknown database (3D000), no CONNECT
 * privilege (42501). Everything else (refused, reset, timed out, 57P03 "the
 * database system is starting up", 53300 too many connections, a DNS name
 * not resolvable yet) is retried.
 */
function isLastingLoginFailure(error: unknown): error is pg.DatabaseError {
  if (!(error instanceof pg.DatabaseError) || error.code === undefined) return false;
  return error.code.startsWith('28') || error.code === '3D000' || error.code === '42501';
}

function describe(error: unknown): string {
  // Node reports a refused connection to a host with several addresses (localhost) as an AggregateError without a message.
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describe).join('; ');
  const cause = error as Error & { code?: string };
  const code = cause.code && !cause.message.includes(cause.code) ? ` (${cause.code})` : '';
  return `${cause.message || cause.name}${code}`;
}

function target(url: string): { host: string; port: number; password?: string } {
  const parsed = new URL(url);
  return { host: parsed.hostname || 'localhost', port: Number(parsed.port || 5432), password: decodeURIComponent(parsed.password) };
}

/**
 * The daemon's first look at Postgres: connects to `postgres.url` (and
 * `postgres.listenUrl` when it differs), waiting with backoff while the
 * server is down or not accepting connections yet, then checks the
 * configuration against the database as `verify` and `triggers install` do.
 * A lasting mistake fails the start at once instead of being retried for
 * ever.
 *
 * @throws `ConnectionFailedError` (`TC_CONNECTION_FAILED`, exit code 3) when Postgres refuses the login: wrong password,
 * unknown role or database (28P01, 28000, 3D000), no CONNECT privilege.
 * @throws `ConfigError` (`TC_CONFIG_INVALID`, exit code 2) when the configuration names tables or columns the database does not have.
 * @throws `ConfigQueryError` (`TC_QUERY_FAILED`, exit code 4) when Postgres refuses a configured query.
 * @throws the signal's reason when it aborts the wait.
 */
export async function checkDatabaseAtStart(config: TablecacheConfig, options: StartupDatabaseCheckOptions): Promise<void> {
  const urls = config.postgres.listenUrl === config.postgres.url ? [config.postgres.url] : [config.postgres.url, config.postgres.listenUrl];
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    let failure: unknown;
    for (const url of urls) {
      failure = await checkOnce(url, url === config.postgres.url ? config : null);
      if (failure !== undefined) break;
    }
    if (failure === undefined) return;
    const retryInMs = retryDelayMs(attempt - 1);
    const cause = describe(failure);
    options.logger.warn({ postgres: redactUrl(config.postgres.url), attempt, retryInMs, cause }, 'waiting for Postgres: it does not accept connections yet');
    options.onRetry?.(attempt, cause, retryInMs);
    await abortableDelay(retryInMs, options.signal);
  }
}

/**
 * Connects to `url` and, with `config`, checks it against the database.
 * Resolves to the failure to retry after, or undefined; throws what must
 * end the start.
 */
async function checkOnce(url: string, config: TablecacheConfig | null): Promise<unknown> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'tablecache-daemon' });
  // A server that goes away during the check reports through 'error'; without a listener Node would crash.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    if (isLastingLoginFailure(error)) throw new ConnectionFailedError(target(url), 'Cannot log in to', error);
    return error;
  }
  try {
    if (config !== null) await checkConfigAgainstDatabase(client, config);
    return undefined;
  } catch (error) {
    // The check's verdict (ConfigError, ConfigQueryError) ends the start; anything else (the connection broke, the server restarted) is retried.
    if (error instanceof TablecacheError) throw error;
    return error;
  } finally {
    await client.end().catch(() => undefined);
  }
}
