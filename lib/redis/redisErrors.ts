import { TablecacheError } from '../core/errors.ts';

/**
 * Errors of the Redis storage and its readers. Each uses one of the stable
 * codes of {@link TablecacheError}, so callers branch on `error.code`.
 */

/**
 * Another writer holds the lease of the table (code `TC_LEASE_HELD`).
 *
 * @example
 * ```ts
 * try { await RedisStorageTable.open({ redis, table: 'users', scorer }); }
 * catch (e) { if (e instanceof LeaseHeldError) console.error(e.holder, e.expiresInMs); }
 * ```
 */
export class LeaseHeldError extends TablecacheError {
  constructor(
    readonly table: string,
    readonly holder: string,
    readonly expiresInMs: number,
  ) {
    super(
      'TC_LEASE_HELD',
      `Table "${table}" already has a writer: ${holder} holds its lease for another ${expiresInMs} ms. ` +
        'Run one writer per table, or let this one wait as a standby to take over when the lease expires ' +
        '(RedisStorageTable.open with { standby: true }; `tablecache daemon` without --no-standby).',
    );
  }
}

/**
 * This writer lost its lease (it was not renewed in time and another writer
 * took the table), so it refuses every further write (code `TC_LEASE_LOST`).
 */
export class LeaseLostError extends TablecacheError {
  /**
   * @param dataLost Redis lost the lease and the table's keys (eviction,
   *   FLUSHALL, a restart without persistence) rather than another writer
   *   taking the lease: the published data is gone too, and must be reloaded.
   */
  constructor(
    readonly table: string,
    detail: string,
    readonly dataLost = false,
  ) {
    super(
      'TC_LEASE_LOST',
      dataLost
        ? `The writer of table "${table}" lost its lease because Redis lost the table's keys (${detail}); no other writer took it. ` +
            'The published data is gone: check maxmemory-policy (it must not evict), then close this writer, open a new one and reload.'
        : `The writer of table "${table}" lost its lease (${detail}); it stopped writing so that two writers never interleave. ` +
            'Close it and open a new writer.',
    );
  }
}

/** What Redis stores does not have the shape this code expects (code `TC_STORAGE_FORMAT`). */
export class StorageFormatError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_STORAGE_FORMAT', message, options);
  }
}

/** A stored record's bytes do not decode (code `TC_STORAGE_FORMAT`); `key` and `field` name where it is. */
export class RecordDecodeError extends StorageFormatError {
  constructor(
    readonly key: string,
    readonly field: string,
    cause: unknown,
  ) {
    super(
      `The record in Redis hash "${key}", field "${field}", does not decode: ${cause instanceof Error ? cause.message : String(cause)}. ` +
        'Reload the cache (a writer of this version rewrites every record).',
      { cause },
    );
  }
}

/** A Redis command did not answer within the configured time (code `TC_TIMEOUT`). */
export class RedisTimeoutError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_TIMEOUT', message, options);
  }
}

/** Redis could not be reached, or the connection is down (code `TC_CONNECTION_FAILED`). */
export class RedisConnectionError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_CONNECTION_FAILED', message, options);
  }
}

/** Redis answered a command with an error this library did not expect (code `TC_STORAGE_FAILED`). */
export class RedisCommandError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_STORAGE_FAILED', message, options);
  }
}

/**
 * A load's generation was not published because Redis no longer holds all
 * the records the load wrote into it (code `TC_STORAGE_FAILED`): an
 * evicting Redis (maxmemory-policy allkeys-*) dropped some of its keys
 * while it was written, and later batches recreated them in part. Readers
 * keep the data they read before; load again (the daemon does).
 */
export class IncompleteGenerationError extends TablecacheError {
  constructor(
    readonly table: string,
    /** The records the load left in the generation. */
    readonly expected: number,
    /** What Redis holds: the records hash's count, then each index's. */
    readonly stored: readonly number[],
  ) {
    super(
      'TC_STORAGE_FAILED',
      `The load of table "${table}" wrote ${expected} records, but Redis holds ${stored.join(', ')} (records, then each index): ` +
        'it evicted part of the new generation, so it was not published. Set maxmemory-policy to noeviction (or give Redis more memory), then load again.',
    );
  }
}

/** The writer or reader was closed (code `TC_CLOSED`). */
export class ClosedError extends TablecacheError {
  constructor(message: string) {
    super('TC_CLOSED', message);
  }
}

const CONNECTION_MESSAGES = [
  "Stream isn't writeable",
  'Connection is closed',
  'Reached the max retries per request limit',
  'connect ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
];

/**
 * Maps an error from ioredis to the library's errors: timeouts to
 * {@link RedisTimeoutError}, an unreachable or closed connection to
 * {@link RedisConnectionError}, anything else to {@link RedisCommandError}.
 * A {@link TablecacheError} passes through unchanged.
 */
export function toTablecacheError(error: unknown, doing: string): TablecacheError {
  if (error instanceof TablecacheError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes('Command timed out')) {
    return new RedisTimeoutError(`Redis did not answer in time while ${doing}.`, { cause: error });
  }
  if (CONNECTION_MESSAGES.some((fragment) => message.includes(fragment))) {
    return new RedisConnectionError(`Redis is not reachable while ${doing}: ${message}.`, { cause: error });
  }
  return new RedisCommandError(`Redis failed while ${doing}: ${message}`, { cause: error });
}

/** What went wrong when a connection could not be opened, to say which setting to check. */
export type ConnectFailureKind = 'credentials' | 'tls' | 'unreachable';

/**
 * Why opening a Redis connection failed, in words, and what kind of failure
 * it was. ioredis rejects `connect()` with a bare "Connection is closed" when
 * the server hangs up (a refused login, a failed TLS handshake) and reports
 * the real cause only on its `error` event, so the caller passes the last
 * error that event carried.
 */
export function connectFailure(connectError: unknown, lastEventError: Error | undefined): { cause: string; kind: ConnectFailureKind } {
  const error = lastEventError ?? connectError;
  const cause = (error instanceof Error ? error.message || error.name : String(error)).replace(/\.$/, '');
  if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(cause)) return { cause, kind: 'credentials' };
  if (/certificate|self.signed|SSL|TLS|Hostname\/IP does not match|ERR_TLS/i.test(cause)) return { cause, kind: 'tls' };
  return { cause, kind: 'unreachable' };
}
