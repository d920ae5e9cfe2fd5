/**
 * Every error this library throws on purpose is a {@link TablecacheError} with
 * a stable `code`, so callers can branch on `error.code` instead of parsing
 * messages. Messages name the bad value and say what to do about it.
 */

/** The stable error codes. New codes are only ever added, never renamed. */
export type TablecacheErrorCode =
  | 'TC_INVALID_ARGUMENT'
  | 'TC_NOT_FOUND'
  | 'TC_ALREADY_LOADED'
  | 'TC_NOT_LOADED'
  | 'TC_NOT_COVERED'
  | 'TC_UNSUPPORTED_OPERATION'
  | 'TC_QUERY_FAILED'
  | 'TC_STORAGE_FAILED'
  | 'TC_STORAGE_FORMAT'
  | 'TC_LEASE_HELD'
  | 'TC_LEASE_LOST'
  | 'TC_TIMEOUT'
  | 'TC_CONNECTION_FAILED'
  | 'TC_CONFIG_INVALID'
  | 'TC_CAPTURE_SETUP'
  | 'TC_CLOSED';

/**
 * Base class of every error thrown by tablecache.
 *
 * @example
 * ```ts
 * try { await table.getFirstRecord('primary_key', 3); }
 * catch (e) { if (e instanceof TablecacheError && e.code === 'TC_NOT_FOUND') … }
 * ```
 */
export class TablecacheError extends Error {
  /** A stable, machine-readable code. */
  readonly code: TablecacheErrorCode;

  constructor(code: TablecacheErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An argument (an index spec, an interval, an option) is not of the expected shape. */
export class InvalidArgumentError extends TablecacheError {
  constructor(message: string, options?: ErrorOptions) {
    super('TC_INVALID_ARGUMENT', message, options);
  }
}

/** `getFirstRecord` found no record for the spec. */
export class RecordNotFoundError extends TablecacheError {
  constructor(message: string) {
    super('TC_NOT_FOUND', message);
  }
}

/** `load` was called on a table that is already loaded (or loading). */
export class AlreadyLoadedError extends TablecacheError {
  constructor(message: string) {
    super('TC_ALREADY_LOADED', message);
  }
}

/** An operation that needs a loaded table was called before `load` finished. */
export class NotLoadedError extends TablecacheError {
  constructor(message: string) {
    super('TC_NOT_LOADED', message);
  }
}

/** An invalidation named records that the storage does not cover. */
export class NotCoveredError extends TablecacheError {
  constructor(message: string) {
    super('TC_NOT_COVERED', message);
  }
}

/**
 * An {@link Indexes} implementation does not support an operation (adjusting,
 * or checking coverage) on the given index.
 */
export class UnsupportedIndexOperationError extends TablecacheError {
  constructor(message: string) {
    super('TC_UNSUPPORTED_OPERATION', message);
  }
}
