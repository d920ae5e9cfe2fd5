import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { TerminalStatusLine } from './terminalStatusLine.ts';

/** Options of {@link createDaemonLogger}. */
export interface DaemonLoggerOptions {
  readonly level: pino.LevelWithSilent;
  /** Where the lines go (default `process.stdout`). */
  readonly stream?: NodeJS.WriteStream;
  /** Readable lines with a progress bar instead of JSON (default: when `stream` is a terminal). */
  readonly pretty?: boolean;
}

/** A logger for the daemon, and the status line for progress bars when it writes to a terminal. */
export interface DaemonLogOutput {
  readonly logger: Logger;
  /** Present when the output is a terminal: progress bars go there. */
  readonly statusLine: TerminalStatusLine | null;
}

/**
 * Paths pino replaces by `***` wherever they occur in a log line's fields: a
 * second line of defence (URLs are logged through `redactUrl` already) so
 * that a password never reaches a log.
 */
const REDACTED_PATHS = ['password', '*.password', 'connectionString', '*.connectionString'];

/**
 * The daemon's pino logger: JSON lines (one per event, for log collectors)
 * unless the output is a terminal, where lines are readable (pino-pretty,
 * when installed) and a status line at the bottom shows load progress. Every line carries
 * `service: "tablecache-daemon"`.
 *
 * @example
 * ```ts
 * const { logger, statusLine } = createDaemonLogger({ level: config.daemon.logLevel });
 * ```
 */
export function createDaemonLogger(options: DaemonLoggerOptions): DaemonLogOutput {
  const stream = options.stream ?? process.stdout;
  const base = { service: 'tablecache-daemon' };
  const redact = { paths: REDACTED_PATHS, censor: '***' };
  const pinoPretty = options.pretty ?? stream.isTTY === true ? loadPinoPretty() : null;
  if (pinoPretty === null) {
    const logger = pino({ level: options.level, base, redact }, stream);
    if (options.pretty === true) logger.warn('pino-pretty is not installed: logging JSON lines (npm install pino-pretty for readable ones)');
    return { logger, statusLine: null };
  }
  const statusLine = new TerminalStatusLine(stream);
  const format = pinoPretty.prettyFactory({ colorize: true, singleLine: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,service' });
  // pino writes one JSON line per call; formatting it here keeps the output
  // synchronous and in step with the status line.
  const destination = { write: (line: string) => statusLine.write(format(line)) };
  return { logger: pino({ level: options.level, base, redact }, destination), statusLine };
}

/**
 * pino-pretty, loaded only for a terminal: it is an optional peer dependency
 * (a daemon in a container logs JSON and never needs it), and loading it
 * costs start-up time. It is CommonJS, so `require` loads it synchronously.
 * Null when it is not installed.
 */
function loadPinoPretty(): typeof PinoPretty | null {
  try {
    return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return null;
    throw error;
  }
}
