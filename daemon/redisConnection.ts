import { readFileSync } from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions, type SentinelAddress } from 'ioredis';
import type { Logger } from '../lib/core/logger.ts';
import { ioredisNatMap } from '../lib/redis/clusterNatMap.ts';
import { redisAddress } from '../lib/redis/redisAddress.ts';
import { SENTINELS_UNREACHABLE, sentinelTlsFailure, watchSentinelTls } from '../lib/redis/sentinelTlsProbe.ts';
import { connectFailure, RedisConnectionError, type ConnectFailureKind } from '../lib/redis/redisErrors.ts';
import type { RedisConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';
import { retryDelayMs } from '../lib/core/retryBackoff.ts';
import { refuseClusterNodeUrl } from './redisTopology.ts';

/** What the daemon, `verify` and the CLI hold: one Redis (a URL, or the primary Sentinel names) or a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/**
 * What a connection is for. `write`: the daemon's, always on the primary or
 * the masters, since it reads its own writes back (intactness, counts);
 * `read`: `verify`'s, where `cluster.scaleReads` and `sentinel.role` say.
 */
export type RedisPurpose = 'write' | 'read';

/** The daemon's backoff for ioredis's reconnects (whose attempts count from 1): 100 ms, doubling up to 5 s. */
const retryDelay = (attempt: number) => retryDelayMs(attempt - 1);

/**
 * A reply READONLY means the connection reached a replica where it expected
 * the primary: a failover demoted the server behind the URL (a managed
 * primary endpoint whose DNS moved). The command fails (the daemon retries
 * its step) and the connection reconnects, reaching the new primary; not
 * resent (2), which would loop on a URL that names a replica for good.
 */
const reconnectOnReadOnly = (error: Error) => error.message.startsWith('READONLY');

/**
 * Where the configured Redis is, fit for messages (passwords redacted):
 * `Redis at redis://cache:6379`, `Redis Cluster at redis://a:7000, …`,
 * `Redis Sentinel master "cache" via redis://s1:26379, …`.
 */
export function describeRedis(config: RedisConfig): string {
  if (config.cluster !== undefined) return `Redis Cluster at ${config.cluster.nodes.map(redactUrl).join(', ')}`;
  if (config.sentinel !== undefined) return `Redis Sentinel master "${config.sentinel.name}" via ${config.sentinel.sentinels.map(redactUrl).join(', ')}`;
  return `Redis at ${redactUrl(config.url ?? '')}`;
}

/**
 * The ioredis options of every data node: the separately given user,
 * password and TLS settings (which win over a URL's), and failing commands
 * after a few reconnect attempts so that an outage surfaces as errors the
 * daemon recovers from (by reloading) instead of as commands piling up in
 * memory.
 */
export function redisOptions(config: RedisConfig, connectionName: string): RedisOptions {
  const { tls } = config;
  return {
    lazyConnect: true,
    connectionName,
    maxRetriesPerRequest: 3,
    retryStrategy: retryDelay,
    reconnectOnError: reconnectOnReadOnly,
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

/** The data nodes' options where only URLs are given: the first URL's credentials, and TLS for `rediss:`, unless the config sets them. */
function nodeOptions(config: RedisConfig, connectionName: string, urls: readonly string[]): RedisOptions {
  const options = redisOptions(config, connectionName);
  const first = redisAddress(urls[0]!, 'A cluster node');
  return {
    ...options,
    ...(options.username === undefined && first.username !== undefined ? { username: first.username } : {}),
    ...(options.password === undefined && first.password !== undefined ? { password: first.password } : {}),
    ...(options.tls === undefined && first.tls ? { tls: {} } : {}),
  };
}

function createCluster(config: RedisConfig, connectionName: string, purpose: RedisPurpose): Cluster {
  const cluster = config.cluster!;
  const { lazyConnect: _lazy, retryStrategy: _retry, ...perNode } = nodeOptions(config, connectionName, cluster.nodes);
  const options: ClusterOptions = {
    lazyConnect: true,
    redisOptions: perNode,
    scaleReads: purpose === 'write' ? 'master' : (cluster.scaleReads ?? 'master'),
    // Reconnecting to the whole cluster (every seed failed) backs off like a single Redis.
    clusterRetryStrategy: retryDelay,
    // A failover moves slots: MOVED, CLUSTERDOWN and TRYAGAIN are retried after a slots refresh
    // up to maxRedirections times, so a command fails only when the cluster stays down.
    maxRedirections: 32,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2_000,
    ...(cluster.natMap === undefined ? {} : { natMap: ioredisNatMap(cluster.natMap) }),
  };
  return new Cluster(cluster.nodes.map((url) => { const { host, port } = redisAddress(url, 'A cluster node'); return { host, port }; }), options);
}

function createSentinelClient(config: RedisConfig, connectionName: string, purpose: RedisPurpose): Redis {
  const sentinel = config.sentinel!;
  const sentinels: Partial<SentinelAddress>[] = sentinel.sentinels.map((url) => { const { host, port } = redisAddress(url, 'A sentinel'); return { host, port }; });
  const first = redisAddress(sentinel.sentinels[0]!, 'A sentinel');
  const sentinelUsername = sentinel.sentinelUsername ?? first.username;
  const sentinelPassword = sentinel.sentinelPassword ?? first.password;
  const options = redisOptions(config, connectionName);
  // One TLS setting for the sentinels and the data nodes they name: redis.tls, or a rediss:// sentinel URL
  // (the system's CAs); sentinel.tls: false keeps the sentinel connections plain.
  const tls = options.tls ?? (sentinel.sentinels.some((url) => redisAddress(url, 'A sentinel').tls) ? {} : undefined);
  return new Redis({
    ...options,
    sentinels,
    name: sentinel.name,
    role: purpose === 'read' && sentinel.role === 'replica' ? 'slave' : 'master',
    ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
    ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
    ...(tls === undefined ? {} : { tls, enableTLSForSentinelMode: true }),
    ...(tls === undefined || sentinel.tls === false ? {} : { sentinelTLS: tls }),
    sentinelRetryStrategy: retryDelay,
    // Not failoverDetector: ioredis 5.11 ends the connection for good when +switch-master arrives while it retries.
  });
}

/**
 * The one place a Redis connection is made from the configuration, for the
 * daemon, `verify` and the CLI: a {@link Redis} for `url` (and for
 * `sentinel`, which asks the sentinels for the primary, or a replica for
 * reads with `role: replica`), a {@link Cluster} for `cluster`. Not yet
 * connected (`lazyConnect`); {@link connectRedis} and
 * {@link connectRedisWhenReachable} connect.
 */
function createRedisConnection(config: RedisConfig, connectionName: string, purpose: RedisPurpose): RedisConnection {
  if (config.cluster !== undefined) return createCluster(config, connectionName, purpose);
  if (config.sentinel !== undefined) return createSentinelClient(config, connectionName, purpose);
  return new Redis(config.url!, redisOptions(config, connectionName));
}

/** A cluster's connect error wraps the node's own (WRONGPASS, a certificate): that one says what to fix. */
function nodeError(error: unknown): unknown {
  const lastNodeError = (error as { lastNodeError?: unknown } | undefined)?.lastNodeError;
  return lastNodeError instanceof Error ? lastNodeError : error;
}

/** Which settings to check, by what made connecting fail. */
const CONNECT_ADVICE: Record<ConnectFailureKind, string> = {
  credentials: 'Check redis.username and redis.password (or the user and password in the Redis URLs) and that user\'s ACL.',
  tls: 'Check redis.tls: caFile must hold the CA that signed the server\'s certificate, and the host in the Redis or sentinel URLs (or servername) a name in it.',
  unreachable: 'Check redis.url (or redis.cluster.nodes, redis.sentinel.sentinels) and that Redis runs.',
};

/**
 * Connects to the configured Redis ({@link createRedisConnection}) and fails
 * at once when it cannot. The caller closes the connection (`quit()`).
 *
 * @throws {@link RedisConnectionError} (`TC_CONNECTION_FAILED`) naming the settings to check.
 */
export async function connectRedis(config: RedisConfig, connectionName: string, purpose: RedisPurpose = 'write'): Promise<RedisConnection> {
  const redis = createRedisConnection(config, connectionName, purpose);
  let lastError: Error | undefined;
  // Connection errors surface through the commands; unhandled, the event would crash the process.
  redis.on('error', (error: Error) => {
    lastError = nodeError(error) as Error;
  });
  redis.on('node error', (error: Error) => {
    lastError = error;
  });
  // Through Sentinel, connect() waits while ioredis tries the sentinels again and again: fail after the first round.
  let sentinelsFailed: (error: Error) => void = () => {};
  const onSentinelsFailed = (error: Error) => {
    if (SENTINELS_UNREACHABLE.test(error.message)) sentinelsFailed(error);
  };
  redis.on('error', onSentinelsFailed);
  try {
    await Promise.race([redis.connect(), new Promise<never>((_, reject) => (sentinelsFailed = reject))]);
  } catch (error) {
    // ioredis would go on reconnecting in the background and keep the process alive.
    redis.disconnect();
    // ioredis names no cause for sentinels it could not talk to: a failed TLS handshake is one.
    if (redis instanceof Redis) lastError = (await sentinelTlsFailure(redis)) ?? lastError;
    const { cause, kind } = connectFailure(nodeError(error), lastError);
    throw new RedisConnectionError(`${describeRedis(config)} ${kind === 'unreachable' ? 'is not reachable' : 'refused the connection'}: ${cause}. ${CONNECT_ADVICE[kind]}`, { cause: error });
  }
  redis.off('error', onSentinelsFailed);
  await refuseClusterNodeUrl(redis, config, describeRedis(config)).catch((error: unknown) => {
    redis.disconnect();
    throw error;
  });
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
 * in a crash loop. ioredis retries by itself (the daemon's backoff: 100 ms doubling, at
 * most 5 s apart); every failed attempt is logged with its cause.
 *
 * @throws {@link RedisConnectionError} (`TC_CONNECTION_FAILED`) at once for what waiting cannot heal: a refused
 * login (WRONGPASS, an unknown ACL user, NOAUTH) or a certificate the configured CA does not accept.
 */
export async function connectRedisWhenReachable(config: RedisConfig, connectionName: string, options: RedisWaitOptions): Promise<RedisConnection> {
  options.signal?.throwIfAborted();
  const redis = createRedisConnection(config, connectionName, 'write');
  const target = describeRedis(config);
  let lastError = 'no answer';
  let lastKind: ConnectFailureKind = 'unreachable';
  let attempt = 0;
  let refused: (error: RedisConnectionError) => void = () => {};
  const onError = (error: Error) => {
    const { cause, kind } = connectFailure(undefined, nodeError(error) as Error);
    lastError = cause;
    lastKind = kind;
    // A refused login or a certificate the CA did not sign stays so: fail now, with the settings to check.
    if (kind === 'credentials' || (kind === 'tls' && /certificate|self.signed|Hostname\/IP does not match/i.test(cause))) {
      refused(new RedisConnectionError(`${target} refused the connection: ${cause}. ${CONNECT_ADVICE[kind]}`, { cause: error }));
    }
  };
  // A Cluster's 'reconnecting' carries no delay.
  const onReconnecting = (delayMs = retryDelay(attempt + 1)) => {
    attempt++;
    const message = lastKind === 'unreachable' ? 'waiting for Redis: it does not answer yet' : 'waiting for Redis: it refused the connection; retrying';
    options.logger.warn({ redis: target, attempt, retryInMs: delayMs, cause: lastError }, message);
    options.onRetry?.(attempt, lastError, delayMs);
  };
  redis.on('error', onError);
  redis.on('node error', onError);
  redis.on('reconnecting', onReconnecting);
  // Sentinels that fail the TLS handshake show only as unreachable: the probe's cause counts as the error.
  const stopWatchingTls = redis instanceof Redis ? watchSentinelTls(redis, onError) : () => {};
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
    stopWatchingTls();
    redis.off('reconnecting', onReconnecting);
    redis.off('error', onError);
    redis.off('node error', onError);
  }
  // Later connection errors surface through the commands; unhandled, the event would crash the process.
  redis.on('error', () => {});
  await refuseClusterNodeUrl(redis, config, describeRedis(config)).catch((error: unknown) => {
    redis.disconnect();
    throw error;
  });
  return redis;
}
