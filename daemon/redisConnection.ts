import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../lib/core/logger.ts';
import { connectFailure, RedisConnectionError, type ConnectFailureKind } from '../lib/redis/redisErrors.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';

/** Reconnect delays of the daemon's Redis connection grow by this per attempt … */
const RETRY_STEP_MS = 200;
/** … up to this. */
const RETRY_MAX_MS = 5_000;

/**
 * The ioredis options for the configured Redis: the URL plus the separately
 * given user, password and TLS settings (which win over the URL's), and
 * failing commands after a few reconnect attempts so that an outage surfaces
 * as errors the daemon recovers from (by reloading) instead of as commands
 * piling up in memory.
 */
export function redisOptions(config: TablecacheConfig['redis'], connectionName: string): RedisOptions {
  const { tls } = config;
  return {
    lazyConnect: true,
    connectionName,
    maxRetriesPerRequest: 3,
    retryStrategy: (attempt) => Math.min(attempt * RETRY_STEP_MS, RETRY_MAX_MS),
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(tls === false
      ? {}
      : {
          tls: {
            rejectUnauthorized: tls.rejectUnauthorized,
            ...(tls.servername === undefined ? {} : { servername: tls.servername }),
            ...(tls.caFile === undefined ? {} : { ca: readFileSync(tls.caFile) }),
            ...(tls.certFile === undefined ? {} : { cert: readFileSync(tls.certFile) }),
            ...(tls.keyFile === undefined ? {} : { key: readFileSync(tls.keyFile) }),
          },
        }),
  };
}

/** Which settings to check, by what made connecting fail. */
const CONNECT_ADVICE: Record<ConnectFailureKind, string> = {
  credentials: 'Check redis.username and redis.password (or the user and password in redis.url) and that user\'s ACL.',
  tls: 'Check redis.tls: caFile must hold the CA that signed the server\'s certificate, and the host in redis.url (or servername) a name in it.',
  unreachable: 'Check redis.url and that Redis runs.',
};

/** Connects to the configured Redis. The caller closes the connection (`quit()`). */
export async function connectRedis(config: TablecacheConfig['redis'], connectionName: string): Promise<Redis> {
  const redis = new Redis(config.url, redisOptions(config, connectionName));
  let lastError: Error | undefined;
  // Connection errors surface through the commands; unhandled, the event would crash the process.
  redis.on('error', (error: Error) => {
    lastError = error;
  });
  try {
    await redis.connect();
  } catch (error) {
    // ioredis would go on reconnecting in the background and keep the process alive.
    redis.disconnect();
    const { cause, kind } = connectFailure(error, lastError);
    throw new RedisConnectionError(`Redis at ${redactUrl(config.url)} ${kind === 'unreachable' ? 'is not reachable' : 'refused the connection'}: ${cause}. ${CONNECT_ADVICE[kind]}`, { cause: error });
  }
  return redis;
}

/** Options of {@link connectRedisWhenReachable}. */
export interface RedisWaitOptions {
  readonly logger: Logger;
  /** Stops waiting: the promise rejects with the signal's reason and the connection is closed. */
  readonly signal?: AbortSignal;
  /** Called before every retry with what failed (for readiness reasons), e.g. `connect ECONNREFUSED 127.0.0.1:6379`. */
  readonly onRetry?: (attempt: number, cause: string, retryInMs: number) => void;
}

/**
 * Connects to the configured Redis, waiting for as long as it takes: a
 * daemon started before its Redis (or during an outage) waits for it instead
 * of exiting, so an orchestrator restarting everything at once does not end
 * in a crash loop. ioredis retries by itself (200 ms more per attempt, at
 * most 5 s apart); every failed attempt is logged with its cause.
 *
 * @throws {@link RedisConnectionError} (`TC_CONNECTION_FAILED`) at once for what waiting cannot heal: a refused
 * login (WRONGPASS, an unknown ACL user, NOAUTH) or a certificate the configured CA does not accept.
 */
export async function connectRedisWhenReachable(config: TablecacheConfig['redis'], connectionName: string, options: RedisWaitOptions): Promise<Redis> {
  options.signal?.throwIfAborted();
  const redis = new Redis(config.url, redisOptions(config, connectionName));
  const target = redactUrl(config.url);
  let lastError = 'no answer';
  let lastKind: ConnectFailureKind = 'unreachable';
  let attempt = 0;
  let refused: (error: RedisConnectionError) => void = () => {};
  const onError = (error: Error) => {
    const { cause, kind } = connectFailure(undefined, error);
    lastError = cause;
    lastKind = kind;
    // A refused login or a certificate the CA did not sign stays so: fail now, with the settings to check.
    if (kind === 'credentials' || (kind === 'tls' && /certificate|self.signed|Hostname\/IP does not match/i.test(cause))) {
      refused(new RedisConnectionError(`Redis at ${target} refused the connection: ${cause}. ${CONNECT_ADVICE[kind]}`, { cause: error }));
    }
  };
  const onReconnecting = (delayMs: number) => {
    attempt++;
    const message = lastKind === 'unreachable' ? 'waiting for Redis: it does not answer yet' : 'waiting for Redis: it refused the connection; retrying';
    options.logger.warn({ redis: target, attempt, retryInMs: delayMs, cause: lastError }, message);
    options.onRetry?.(attempt, lastError, delayMs);
  };
  redis.on('error', onError);
  redis.on('reconnecting', onReconnecting);
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        redis.off('ready', onReady);
        reject(options.signal!.reason);
      };
      const onReady = () => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      refused = (error) => {
        redis.off('ready', onReady);
        options.signal?.removeEventListener('abort', onAbort);
        reject(error);
      };
      redis.once('ready', onReady);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // A failed first attempt rejects here, but ioredis goes on retrying
      // (retryStrategy); 'ready' tells when one succeeded.
      redis.connect().catch(() => {});
    });
  } catch (error) {
    redis.disconnect();
    throw error;
  } finally {
    redis.off('reconnecting', onReconnecting);
    redis.off('error', onError);
  }
  // Later connection errors surface through the commands; unhandled, the event would crash the process.
  redis.on('error', () => {});
  return redis;
}
