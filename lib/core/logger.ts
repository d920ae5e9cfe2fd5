/**
 * The logging surface the library uses: the subset of a pino logger it needs,
 * so a pino instance (or a child with `scope` fields) can be passed as is.
 */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

const ignore = (): void => {};

/** A logger that drops everything: the default when none is passed. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
