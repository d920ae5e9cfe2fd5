import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterNode, type Command, type RedisOptions } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';
import { retryDelayMs, type RetryBackoffPolicy } from '../core/retryBackoff.ts';
import { ioredisNatMap, type ClusterNatMap } from '../redis/clusterNatMap.ts';
import { redisAddress } from '../redis/redisAddress.ts';

/**
 * Which Redis a reader opens and which node of it each read goes to: one
 * node (`url`), a Redis Cluster (`cluster`) or a primary with replicas behind
 * Sentinel (`sentinel`), read from the primary or from replicas (`readFrom`).
 */

/** Where a reader's reads go. */
export type ReadFrom = 'primary' | 'replica' | 'preferReplica';

/** A Redis Cluster to read from. */
export interface ReaderClusterOptions {
  /** Seed nodes (`redis://host:port`, `rediss://` for TLS); the reader discovers the others. User and password may be in the first URL. */
  readonly nodes: readonly string[];
  /** Addresses the nodes announce, mapped to addresses this process reaches them at (`{ '10.0.0.5:6379': '127.0.0.1:7000' }`; a value may be `{ host, port }`). */
  readonly natMap?: ClusterNatMap;
  /** ACL user and password, when not in the first URL. */
  readonly username?: string;
  readonly password?: string;
}

/** A primary with replicas watched by Redis Sentinel. */
export interface ReaderSentinelOptions {
  /** The sentinels (`redis://host:port`, `rediss://` for TLS; user and password in a URL are the sentinels' own). */
  readonly sentinels: readonly string[];
  /** The master name the sentinels monitor. */
  readonly name: string;
  /** ACL user and password of the data nodes. */
  readonly username?: string;
  readonly password?: string;
  /**
   * `false`: the sentinels listen without TLS while the data nodes use it
   * (the reader's `tls`). By default the connections to the sentinels use
   * TLS exactly when those to the data nodes do.
   */
  readonly tls?: false;
}

/** What {@link createReaderClient} needs. */
export interface ReaderTopologyOptions {
  readonly url?: string | undefined;
  readonly cluster?: ReaderClusterOptions | undefined;
  readonly sentinel?: ReaderSentinelOptions | undefined;
  readonly readFrom?: ReadFrom | undefined;
  readonly tls?: ConnectionOptions | undefined;
}

/** A reader's connection: one node (a URL or Sentinel) or a cluster. */
export type ReaderClient = Redis | Cluster;

/**
 * How a reader reconnects: the daemon's backoff with full jitter, capped
 * lower (a reader's reads fail fast meanwhile), so that the many readers
 * that lost one Redis at once do not all reconnect in the same instant.
 */
const RECONNECT_BACKOFF: RetryBackoffPolicy = { minMs: 100, maxMs: 2_000 };

/** ioredis counts reconnect attempts from 1. */
const reconnectDelay = (attempt: number) => retryDelayMs(attempt - 1, RECONNECT_BACKOFF);

/** What every connection a reader opens shares: fail fast, never send what a read-only ACL user may not run. */
function nodeOptions(timeoutMs: number, tls: ConnectionOptions | undefined): RedisOptions {
  return {
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    // The ready check sends INFO and the client info CLIENT SETINFO: a
    // read-only ACL user need not be allowed either (and each refusal
    // would land in Redis's ACL LOG).
    enableReadyCheck: false,
    disableClientInfo: true,
    retryStrategy: reconnectDelay,
    ...(tls === undefined ? {} : { tls }),
  };
}

/**
 * Commands sent to the primary of their slot whatever `readFrom` says (a
 * barrier timeout asks the primary whether the mark is there).
 */
const primaryCommands = new WeakSet<Command>();

/** Marks `command` for the primary of its slot (on a cluster client); returns it. */
export function toPrimary(command: Command): Command {
  primaryCommands.add(command);
  return command;
}

/**
 * The cluster's `scaleReads`: ioredis calls it for read-only commands with
 * the nodes serving the command's slot, master first. Each reader sticks to
 * one replica per slot (picked at random when it opens), so that its reads
 * never go back in time between two replicas that lag differently, and a
 * barrier mark seen on its replica holds for its next read there. Readers
 * spread over the replicas by their random picks. A slot without a replica
 * is read from its master (ioredis's fallback).
 */
function stickyReplica(): (nodes: Redis[], command: Command) => Redis | undefined {
  const pick = Math.floor(Math.random() * 1_000_000);
  return (nodes, command) => {
    if (primaryCommands.has(command) || nodes.length < 2) return nodes[0];
    return nodes[1 + (pick % (nodes.length - 1))];
  };
}

/**
 * Builds the reader's connection (not connected: `lazyConnect`).
 *
 * - `url`: one node; with `readFrom` other than `primary` the connection
 *   sends READONLY at every connect, so a Redis Cluster replica answers reads
 *   of its master's slots instead of MOVED.
 * - `cluster`: an ioredis `Cluster`; `readFrom: 'replica'` or
 *   `'preferReplica'` reads each slot from one of its replicas (sticky per
 *   reader), `primary` from its master.
 * - `sentinel`: the primary, or with `readFrom` other than `primary` one
 *   replica the sentinels name (`preferReplica` falls back to the primary,
 *   see {@link sentinelFallback}).
 *
 * @throws {@link InvalidArgumentError} when not exactly one of them is given, or a URL or `cluster.natMap` entry is malformed.
 */
export function createReaderClient(options: ReaderTopologyOptions, timeoutMs: number, role?: 'master'): ReaderClient {
  const given = [options.url, options.cluster, options.sentinel].filter((value) => value !== undefined).length;
  if (given !== 1) throw new InvalidArgumentError('Give openReader exactly one of `redis` (a connection), `url`, `cluster` or `sentinel`.');
  const readFrom = options.readFrom ?? 'primary';
  if (!['primary', 'replica', 'preferReplica'].includes(readFrom)) {
    throw new InvalidArgumentError(`readFrom must be 'primary', 'replica' or 'preferReplica', got ${JSON.stringify(readFrom)}.`);
  }
  if (options.cluster !== undefined) return clusterClient(options.cluster, readFrom, timeoutMs, options.tls);
  if (options.sentinel !== undefined) return sentinelClient(options.sentinel, role ?? (readFrom === 'primary' ? 'master' : 'slave'), timeoutMs, options.tls);
  return new Redis(options.url!, { ...nodeOptions(timeoutMs, options.tls), lazyConnect: true, enableOfflineQueue: false, readOnly: readFrom !== 'primary' });
}

/** Whether a sentinel reader that could not reach a replica in time opens on the primary instead (`preferReplica`). */
export function sentinelFallback(options: ReaderTopologyOptions): boolean {
  return options.sentinel !== undefined && options.readFrom === 'preferReplica';
}

function clusterClient(options: ReaderClusterOptions, readFrom: ReadFrom, timeoutMs: number, tls: ConnectionOptions | undefined): Cluster {
  if (!Array.isArray(options.nodes) || options.nodes.length === 0) throw new InvalidArgumentError('cluster.nodes must list at least one node URL (redis://host:port).');
  const seeds = options.nodes.map((url) => redisAddress(url, 'A cluster node'));
  const first = seeds[0]!;
  const credentials = { username: options.username ?? first.username, password: options.password ?? first.password };
  const nodes: ClusterNode[] = seeds.map(({ host, port }) => ({ host, port }));
  return new Cluster(nodes, {
    lazyConnect: true,
    enableReadyCheck: false,
    // Commands fail at once while the cluster is down, as a reader's do on one node.
    enableOfflineQueue: false,
    scaleReads: readFrom === 'primary' ? 'master' : stickyReplica(),
    slotsRefreshTimeout: timeoutMs,
    clusterRetryStrategy: reconnectDelay,
    ...(options.natMap === undefined ? {} : { natMap: ioredisNatMap(options.natMap) }),
    redisOptions: {
      ...nodeOptions(timeoutMs, tls ?? (first.tls ? {} : undefined)),
      ...(credentials.username === undefined ? {} : { username: credentials.username }),
      ...(credentials.password === undefined ? {} : { password: credentials.password }),
    },
  });
}

function sentinelClient(options: ReaderSentinelOptions, role: 'master' | 'slave', timeoutMs: number, tls: ConnectionOptions | undefined): Redis {
  if (!Array.isArray(options.sentinels) || options.sentinels.length === 0) throw new InvalidArgumentError('sentinel.sentinels must list at least one sentinel URL (redis://host:port).');
  if (typeof options.name !== 'string' || options.name === '') throw new InvalidArgumentError('sentinel.name must name the master the sentinels monitor.');
  const sentinels = options.sentinels.map((url) => redisAddress(url, 'A sentinel'));
  const first = sentinels[0]!;
  // One TLS setting for the sentinels and the data nodes: `tls`, or a rediss:// sentinel URL (the system's CAs).
  const tlsOptions = tls ?? (sentinels.some((sentinel) => sentinel.tls) ? {} : undefined);
  if (options.tls === false && sentinels.some((sentinel) => sentinel.tls)) {
    throw new InvalidArgumentError('sentinel.tls: false keeps the sentinel connections plain, but a sentinel URL is rediss://: write redis:// or remove tls: false.');
  }
  return new Redis({
    ...nodeOptions(timeoutMs, tlsOptions),
    sentinels: sentinels.map(({ host, port }) => ({ host, port })),
    name: options.name,
    role,
    lazyConnect: true,
    enableOfflineQueue: false,
    sentinelMaxConnections: 3,
    sentinelRetryStrategy: reconnectDelay,
    ...(first.username === undefined ? {} : { sentinelUsername: first.username }),
    ...(first.password === undefined ? {} : { sentinelPassword: first.password }),
    ...(tlsOptions === undefined ? {} : { enableTLSForSentinelMode: true }),
    ...(tlsOptions === undefined || options.tls === false ? {} : { sentinelTLS: tlsOptions }),
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: options.password }),
  });
}
