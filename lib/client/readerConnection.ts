import type { ConnectionOptions } from 'node:tls';
import { Cluster, Command, Redis } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';
import type { RedisArgument } from '../redis/luaScript.ts';
import { connectFailure, RedisConnectionError, RedisTimeoutError, toTablecacheError, type ConnectFailureKind } from '../redis/redisErrors.ts';
import { watchSentinelTls } from '../redis/sentinelTlsProbe.ts';
import {
  isFunctionUnavailable,
  isReaderReplyError,
  readerFunctionCommand,
  runReaderScript,
  type ReaderScriptName,
} from '../redis/scripts/readerScripts.ts';
import { createReaderClient, sentinelFallback, toPrimary, type ReadFrom, type ReaderClient, type ReaderClusterOptions, type ReaderSentinelOptions } from './readerTopology.ts';

/** How a reader reaches Redis. */
export interface ReaderConnectionOptions {
  /** A connection to use, one node or an ioredis `Cluster` (left open by `close`). Give this, `url`, `cluster` or `sentinel`. */
  readonly redis?: Redis | Cluster;
  /** A Redis URL (`redis://user:password@host:port/db`, `rediss://` for TLS); the reader owns that connection. */
  readonly url?: string;
  /** A Redis Cluster: seed node URLs (the reader owns the connections). */
  readonly cluster?: ReaderClusterOptions;
  /** A primary with replicas behind Redis Sentinel (the reader owns the connection). */
  readonly sentinel?: ReaderSentinelOptions;
  /**
   * Where reads go (default `primary`). `replica`: a replica (with `url`: the
   * URL is a replica, and READONLY is sent so a cluster replica answers; with
   * `cluster`: one replica of each slot, sticky per reader; with `sentinel`: a
   * replica the sentinels name, waiting while there is none).
   * `preferReplica`: the same, but a sentinel reader that finds no replica
   * within `timeoutMs` reads the primary; a cluster slot without a replica is
   * read from its master either way. Replicas lag: wait for barriers with
   * `waitForBarrier(reader, id)`, which waits on the node the reader reads.
   */
  readonly readFrom?: ReadFrom;
  /**
   * TLS for the connection opened from `url`: the CA to trust, a client
   * certificate and key, `servername`, as Node's `tls.connect` takes them
   * (`{ ca: readFileSync('ca.crt') }`). Giving it turns TLS on even for a
   * `redis://` URL; `rediss://` alone uses TLS with the system's CAs.
   */
  readonly tls?: ConnectionOptions;
  /** How long one read may take before it fails with `TC_TIMEOUT` (default 1,000 ms); also bounds connecting. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1_000;

/** Which option to check, by what made connecting fail. */
const CONNECT_ADVICE: Record<ConnectFailureKind, string> = {
  credentials: " Check the user and password (in `url`, or `username` and `password` of `cluster` or `sentinel`) and that user's ACL.",
  tls: " Check `tls`: `ca` must hold the CA that signed the server's certificate, and the host in `url` or the sentinel URLs (or `servername`) a name in it.",
  unreachable: '',
};
/** How long a reader uses scripts after finding the function library missing, before it tries FCALL_RO again. */
const FUNCTION_RETRY_MS = 30_000;

/**
 * A read in flight, linked into a list in start order: cheaper per read than
 * a Set (no hashing), and the deadline check stops at the first read that is
 * not overdue.
 */
interface PendingRead {
  readonly startedAt: number;
  readonly doing: string;
  readonly fail: (error: Error) => void;
  older: PendingRead | null;
  newer: PendingRead | null;
  /** Whether it left the list (answered, failed, or timed out). */
  done: boolean;
}

/**
 * The reader's Redis connection: every call fails fast with a typed error
 * instead of waiting. A connection the reader opens itself does not queue
 * commands while disconnected (they fail with `TC_CONNECTION_FAILED` at once)
 * and reconnects in the background; a passed-in connection keeps its own
 * settings. Either way each call fails with `TC_TIMEOUT` once it has waited
 * `timeoutMs` (checked by one timer for all calls, at a quarter of
 * `timeoutMs`, so a call fails after between 1 and 1.25 times `timeoutMs`).
 */
export class ReaderConnection {
  private oldestPending: PendingRead | null = null;
  private newestPending: PendingRead | null = null;
  private readonly deadlineTimer: NodeJS.Timeout;
  private readonly checkEveryMs: number;
  /** When the deadlines were last checked: a check that comes much later than due finds this process was stalled. */
  private lastCheckAt = performance.now();
  /** When to try the function library again after it was missing (0: use it). */
  private scriptsUntil = 0;

  private constructor(
    readonly redis: ReaderClient,
    private readonly owned: boolean,
    readonly timeoutMs: number,
  ) {
    this.checkEveryMs = Math.max(5, Math.ceil(timeoutMs / 4));
    this.deadlineTimer = setInterval(() => this.checkDeadlines(), this.checkEveryMs);
    // Readers must not keep a process alive.
    this.deadlineTimer.unref();
  }

  /**
   * @throws {@link RedisConnectionError} when Redis cannot be reached within `timeoutMs`.
   * @throws {@link InvalidArgumentError} for bad options.
   */
  static async open(options: ReaderConnectionOptions, describe: string): Promise<ReaderConnection> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new InvalidArgumentError(`timeoutMs must be a positive number of ms, got ${timeoutMs}.`);
    if (options.redis) {
      if ([options.url, options.cluster, options.sentinel].some((value) => value !== undefined)) {
        throw new InvalidArgumentError('Give openReader exactly one of `redis` (a connection), `url`, `cluster` or `sentinel`.');
      }
      if (options.tls !== undefined || options.readFrom !== undefined) {
        throw new InvalidArgumentError('`tls` and `readFrom` apply to the connection openReader opens; set them on the connection you pass as `redis` instead (`scaleReads` on a Cluster).');
      }
      return new ReaderConnection(options.redis, false, timeoutMs);
    }
    try {
      return await ReaderConnection.connect(createReaderClient(options, timeoutMs), describe, timeoutMs);
    } catch (error) {
      if (!(error instanceof RedisConnectionError) || !sentinelFallback(options)) throw error;
      // preferReplica: no replica answered in time, so read the primary.
      return ReaderConnection.connect(createReaderClient(options, timeoutMs, 'master'), describe, timeoutMs);
    }
  }

  private static async connect(redis: ReaderClient, describe: string, timeoutMs: number): Promise<ReaderConnection> {
    let lastError: Error | undefined;
    // Errors surface through the calls; without a listener ioredis would log each reconnect failure.
    const onError = (error: Error & { lastNodeError?: Error }) => {
      // A cluster's "all nodes failed" carries the node's own error (a refused AUTH, say): that one names the cause.
      lastError = error.lastNodeError ?? error;
    };
    redis.on('error', onError);
    redis.on('node error', onError);
    // Sentinels that fail the TLS handshake show only as unreachable, and ioredis would try them until the deadline.
    let tlsRefused: (failure: Error) => void = () => {};
    const stopWatchingTls = redis instanceof Redis ? watchSentinelTls(redis, (failure) => {
      lastError = failure;
      tlsRefused(failure);
    }) : () => {};
    try {
      const refused = new Promise<never>((_, reject) => (tlsRefused = reject));
      await withDeadline(Promise.race([redis.connect(), refused]), timeoutMs, () => new RedisConnectionError(`Could not connect to Redis for ${describe} within ${timeoutMs} ms.`));
    } catch (error) {
      redis.disconnect();
      if (error instanceof RedisConnectionError) throw error;
      const { cause, kind } = connectFailure(error, lastError);
      throw new RedisConnectionError(`Could not connect to Redis for ${describe}: ${cause}.${CONNECT_ADVICE[kind]}`, { cause: error });
    } finally {
      stopWatchingTls();
    }
    redis.off('error', onError);
    redis.off('node error', onError);
    redis.on('error', () => {});
    return new ReaderConnection(redis, true, timeoutMs);
  }

  /**
   * Runs a reader script: as a function of the library the writer loaded
   * (FCALL_RO), or, where the library is missing or not allowed, as a
   * read-only script (EVALSHA_RO). Fails with a typed error after
   * `timeoutMs`; error replies a script raises on purpose (`TC_…`) pass
   * through unchanged, for the caller to map.
   */
  read(name: ReaderScriptName, keys: readonly string[], args: readonly RedisArgument[], doing: string): Promise<unknown> {
    if (this.scriptsUntil > 0 && Date.now() < this.scriptsUntil) return this.readWithScript(name, keys, args, doing);
    // The command itself, not callBuffer: its promise is the read's promise and
    // its reject is the deadline's, so a read allocates no promise of its own.
    // Measured: a wrapping promise whose handlers call resolve cost ~3 µs of a
    // ~30 µs loopback read.
    const command = readerFunctionCommand(name, keys, args, this.redis.options.keyPrefix);
    const entry = this.track(doing, command.reject);
    void this.redis.sendCommand(command);
    return command.promise.then(
      (reply: unknown) => {
        this.untrack(entry);
        this.scriptsUntil = 0;
        return reply;
      },
      (error: unknown) => {
        this.untrack(entry);
        // Missing after a Redis restart without persistence, loaded by a writer of another version, or not granted to this user.
        if (!isFunctionUnavailable(error)) throw readError(error, doing);
        this.scriptsUntil = Date.now() + FUNCTION_RETRY_MS;
        return this.readWithScript(name, keys, args, doing);
      },
    );
  }

  /** The fallback without the function library: EVALSHA_RO, and EVAL_RO when Redis lacks the script, within one deadline. */
  private readWithScript(name: ReaderScriptName, keys: readonly string[], args: readonly RedisArgument[], doing: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const entry = this.track(doing, reject);
      runReaderScript(this.redis, name, keys, args).then(
        (reply) => {
          this.untrack(entry);
          resolve(reply);
        },
        (error: unknown) => {
          this.untrack(entry);
          reject(readError(error, doing));
        },
      );
    });
  }

  /**
   * Whether the primary this connection replicates from holds `key`, when
   * the connection reads a replica: a barrier mark there but not here means
   * replication lag. Null when this connection reads the primary itself, or
   * the primary cannot be asked within `timeoutMs` (unknown address, an ACL
   * without ROLE, a password the replica does not share).
   */
  async primaryHasKey(key: string): Promise<boolean | null> {
    const ask = async (): Promise<boolean | null> => {
      if (this.redis instanceof Cluster) {
        if (typeof this.redis.options.scaleReads !== 'function') return null;
        return Number(await this.redis.sendCommand(toPrimary(new Command('exists', [key])))) === 1;
      }
      let primary: Redis;
      if (this.redis.options.sentinels !== undefined && this.redis.options.role === 'slave') {
        primary = this.redis.duplicate({ role: 'master', lazyConnect: true, enableOfflineQueue: true, readOnly: false });
      } else {
        const role = (await this.redis.call('role')) as [string, string?, number?];
        if (role[0] !== 'slave' || role[1] === undefined) return null;
        primary = this.redis.duplicate({ host: role[1], port: Number(role[2]), lazyConnect: true, enableOfflineQueue: true, readOnly: false });
      }
      primary.on('error', () => {});
      try {
        return (await primary.exists(key)) === 1;
      } finally {
        primary.disconnect();
      }
    };
    return withDeadline(ask(), this.timeoutMs, () => new Error('no answer')).catch(() => null);
  }

  /** Closes the connection if this reader opened it: QUIT, or a plain disconnect when Redis does not answer in `timeoutMs`. */
  async close(): Promise<void> {
    clearInterval(this.deadlineTimer);
    if (!this.owned) return;
    await withDeadline(this.redis.quit(), this.timeoutMs, () => new Error('QUIT timed out')).catch(() => this.redis.disconnect());
  }

  private track(doing: string, fail: (error: Error) => void): PendingRead {
    const entry: PendingRead = { startedAt: performance.now(), doing, fail, older: this.newestPending, newer: null, done: false };
    if (this.newestPending === null) this.oldestPending = entry;
    else this.newestPending.newer = entry;
    this.newestPending = entry;
    return entry;
  }

  private untrack(entry: PendingRead): void {
    if (entry.done) return;
    entry.done = true;
    if (entry.older === null) this.oldestPending = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === null) this.newestPending = entry.older;
    else entry.newer.older = entry.older;
    // A read Redis never answers keeps its entry alive: it must not keep its neighbours.
    entry.older = null;
    entry.newer = null;
  }

  /**
   * A read is overdue when Redis did not answer it in time, not when this
   * process was too busy to send it or to read the answer (a long synchronous
   * task, a GC pause): after a check that comes late, the answers get one
   * more interval; and each check runs after the next poll phase (timers run
   * before I/O is read), so that an answer already in the socket counts.
   */
  private checkDeadlines(): void {
    const now = performance.now();
    const stalled = now - this.lastCheckAt > 2 * this.checkEveryMs;
    this.lastCheckAt = now;
    if (stalled) return;
    setImmediate(() => this.failOverdue());
  }

  private failOverdue(): void {
    const now = performance.now();
    // Oldest first: the first read that is not overdue ends the check.
    while (this.oldestPending !== null && now - this.oldestPending.startedAt >= this.timeoutMs) {
      const entry = this.oldestPending;
      this.untrack(entry);
      entry.fail(new RedisTimeoutError(`Redis did not answer within ${this.timeoutMs} ms while ${entry.doing}.`));
    }
  }
}

/** Error replies a reader script raises on purpose (`TC_…`) pass through, for the caller to map; anything else becomes a typed error. */
function readError(error: unknown, doing: string): unknown {
  return isReaderReplyError(error) ? error : toTablecacheError(error, doing);
}

function withDeadline<T>(promise: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
