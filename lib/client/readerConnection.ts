import { Redis } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';
import type { RedisArgument } from '../redis/luaScript.ts';
import { RedisConnectionError, RedisTimeoutError, toTablecacheError } from '../redis/redisErrors.ts';
import { readerFunctionLibrary, readerScripts, type ReaderScriptName } from '../redis/scripts/readerScripts.ts';

/** How a reader reaches Redis. */
export interface ReaderConnectionOptions {
  /** A connection to use (left open by `close`). Give this or `url`. */
  readonly redis?: Redis;
  /** A Redis URL (`redis://user:password@host:port/db`, `rediss://` for TLS); the reader owns that connection. */
  readonly url?: string;
  /** How long one read may take before it fails with `TC_TIMEOUT` (default 1,000 ms); also bounds connecting. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1_000;
/** How long a reader uses scripts after finding the function library missing, before it tries FCALL_RO again. */
const FUNCTION_RETRY_MS = 30_000;

interface PendingRead {
  readonly startedAt: number;
  readonly doing: string;
  readonly fail: (error: Error) => void;
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
  private readonly pending = new Set<PendingRead>();
  private readonly deadlineTimer: NodeJS.Timeout;
  /** When to try the function library again after it was missing (0: use it). */
  private scriptsUntil = 0;

  private constructor(
    readonly redis: Redis,
    private readonly owned: boolean,
    readonly timeoutMs: number,
  ) {
    this.deadlineTimer = setInterval(() => this.failOverdue(), Math.max(5, Math.ceil(timeoutMs / 4)));
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
    if ((options.redis === undefined) === (options.url === undefined)) {
      throw new InvalidArgumentError('Give openReader exactly one of `redis` (a connection) or `url`.');
    }
    if (options.redis) return new ReaderConnection(options.redis, false, timeoutMs);
    const redis = new Redis(options.url!, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // The ready check sends INFO and the client info CLIENT SETINFO: a
      // read-only ACL user need not be allowed either (and each refusal
      // would land in Redis's ACL LOG).
      enableReadyCheck: false,
      disableClientInfo: true,
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    });
    // Errors surface through the calls; without a listener ioredis would log each reconnect failure.
    redis.on('error', () => {});
    try {
      await withDeadline(redis.connect(), timeoutMs, () => new RedisConnectionError(`Could not connect to Redis for ${describe} within ${timeoutMs} ms.`));
    } catch (error) {
      redis.disconnect();
      if (error instanceof RedisConnectionError) throw error;
      throw new RedisConnectionError(`Could not connect to Redis for ${describe}: ${(error as Error).message}.`, { cause: error });
    }
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
    return new Promise((resolve, reject) => {
      const entry: PendingRead = { startedAt: performance.now(), doing, fail: reject };
      this.pending.add(entry);
      this.run(name, keys, args).then(
        (reply) => {
          this.pending.delete(entry);
          resolve(reply);
        },
        (error: unknown) => {
          this.pending.delete(entry);
          reject(error instanceof Error && error.message.startsWith('TC_') ? error : toTablecacheError(error, doing));
        },
      );
    });
  }

  private run(name: ReaderScriptName, keys: readonly string[], args: readonly RedisArgument[]): Promise<unknown> {
    const script = readerScripts[name];
    if (this.scriptsUntil > 0 && Date.now() < this.scriptsUntil) return script.run(this.redis, keys, args, true);
    return this.redis.callBuffer('FCALL_RO', readerFunctionLibrary.functionName(name), keys.length, ...keys, ...args).then(
      (reply) => {
        this.scriptsUntil = 0;
        return reply;
      },
      (error: unknown) => {
        // Missing after a Redis restart without persistence, loaded by a writer of another version, or not granted to this user.
        if (!(error instanceof Error) || !/Function not found|NOPERM.*fcall_ro/i.test(error.message)) throw error;
        this.scriptsUntil = Date.now() + FUNCTION_RETRY_MS;
        return script.run(this.redis, keys, args, true);
      },
    );
  }

  /** Closes the connection if this reader opened it: QUIT, or a plain disconnect when Redis does not answer in `timeoutMs`. */
  async close(): Promise<void> {
    clearInterval(this.deadlineTimer);
    if (!this.owned) return;
    await withDeadline(this.redis.quit(), this.timeoutMs, () => new Error('QUIT timed out')).catch(() => this.redis.disconnect());
  }

  private failOverdue(): void {
    const now = performance.now();
    for (const entry of this.pending) {
      if (now - entry.startedAt < this.timeoutMs) continue;
      this.pending.delete(entry);
      entry.fail(new RedisTimeoutError(`Redis did not answer within ${this.timeoutMs} ms while ${entry.doing}.`));
    }
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
