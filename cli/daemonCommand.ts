import { Option, type Command } from 'commander';
import type { Logger } from 'pino';
import { TablecacheError } from '../lib/core/errors.ts';
import type { HealthServer } from '../daemon/http/healthServer.ts';
import type { CliContext } from './cliContext.ts';
import { describeFailure, EXIT_CODES } from './exitCodes.ts';

interface DaemonCommandOptions {
  readonly config: string;
  /** Wait for another daemon's leases (default) rather than fail at start. */
  readonly standby?: boolean;
}

/**
 * How long a stop may take before the process exits anyway: orchestrators
 * send SIGKILL after a grace period (Docker: 10 s), and a stop that is cut
 * short by SIGKILL leaves the lease to expire instead of handing it over.
 */
const STOP_DEADLINE_MS = 9_000;

/** The first SIGTERM or SIGINT (`received` resolves with its name), until `cancel` removes the handlers. */
function nextStopSignal(): { readonly received: Promise<NodeJS.Signals>; cancel(): void } {
  let stop: (signal: NodeJS.Signals) => void = () => {};
  const cancel = () => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    stop = (signal) => {
      cancel();
      resolve(signal);
    };
  });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return { received, cancel };
}

/**
 * Bounds the stop: a second signal, or {@link STOP_DEADLINE_MS} passing,
 * ends the process at once with exit code 1. Returns the function that
 * disarms it.
 */
function boundStop(logger: Logger): () => void {
  const force = (why: string) => {
    logger.error({ why }, 'exiting before the stop finished: the writer leases expire by themselves');
    process.exit(EXIT_CODES.checkFailed);
  };
  const timer = setTimeout(() => force(`did not stop within ${STOP_DEADLINE_MS / 1000} s`), STOP_DEADLINE_MS);
  timer.unref();
  const onSecondSignal = (signal: NodeJS.Signals) => force(`a second ${signal}`);
  process.once('SIGTERM', onSecondSignal);
  process.once('SIGINT', onSecondSignal);
  return () => {
    clearTimeout(timer);
    process.off('SIGTERM', onSecondSignal);
    process.off('SIGINT', onSecondSignal);
  };
}

/**
 * Runs the daemon of a configuration file until SIGTERM or SIGINT, then
 * finishes the steps under way, stops listening, releases the writer leases
 * and resolves to the exit code (0), within 10 s.
 *
 * Serves `/healthz`, `/readyz` and `/metrics` on `daemon.http` from the
 * start, so a daemon that waits (for Postgres or Redis, retrying with
 * backoff, or for another daemon's lease as a standby) reports why it is
 * not ready instead of exiting. Logs JSON lines (pino) to stdout at the
 * configured level, or readable lines with a progress bar on a terminal.
 * A signal during the start aborts it. A failure retrying cannot heal while
 * it runs (the `fatal` event: e.g. its replication slot gone and no free slot
 * to create it again) stops it; the error is printed and its code gives the
 * exit code.
 *
 * A table whose lease another daemon holds is waited for (as a standby) unless
 * `standby` is false: a daemon restarted after a crash waits out its own
 * previous lease, and a second daemon takes over when the first dies.
 */
export async function runDaemon(context: CliContext, options: DaemonCommandOptions): Promise<number> {
  // Imported here, not at the top: `tablecache --help` should not pay for loading the daemon.
  const [{ loadConfig }, { createDaemonLogger }, { DaemonMetrics }, { HealthServer }, { reportLoadProgress }, { TablecacheDaemon }] = await Promise.all([
    import('../daemon/config/loadConfig.ts'),
    import('../daemon/daemonLogger.ts'),
    import('../daemon/http/daemonMetrics.ts'),
    import('../daemon/http/healthServer.ts'),
    import('../daemon/loadProgressReport.ts'),
    import('../daemon/tablecacheDaemon.ts'),
  ]);
  const config = await loadConfig(options.config);
  const { logger, statusLine } = createDaemonLogger({ level: config.daemon.logLevel });
  const aborter = new AbortController();
  const stopSignal = nextStopSignal();
  const stopped = stopSignal.received.then((signal) => {
    aborter.abort(new TablecacheError('TC_CLOSED', `stopped by ${signal} while starting`));
    return signal;
  });
  const daemon = new TablecacheDaemon(config, { logger, standby: options.standby ?? true, signal: aborter.signal });
  // A failure retrying cannot heal (the daemon stops itself): the process exits with its code, e.g. 5 for TC_CAPTURE_SETUP.
  const fatal = new Promise<TablecacheError>((resolve) => daemon.once('fatal', ({ error }) => resolve(error)));
  const metrics = new DaemonMetrics(daemon);
  const stopReporting = reportLoadProgress(daemon, { logger, statusLine });
  let server: HealthServer | undefined;
  try {
    server = await HealthServer.start({ ...config.daemon.http, daemon, metrics, logger });
    try {
      await daemon.start();
    } catch (error) {
      if (aborter.signal.aborted) return EXIT_CODES.ok;
      throw error;
    }
    const outcome = await Promise.race([stopped, fatal]);
    if (outcome instanceof TablecacheError) {
      await daemon.close();
      const failure = describeFailure(outcome);
      context.err(`error: ${failure.message}\n`);
      return failure.exitCode;
    }
    const signal = outcome;
    logger.info({ signal }, 'stopping: finishing the steps under way, then no longer listening, releasing the writer leases');
    const disarm = boundStop(logger);
    await daemon.close();
    disarm();
    logger.info('daemon stopped');
    return EXIT_CODES.ok;
  } finally {
    stopSignal.cancel();
    stopReporting();
    metrics.close();
    await server?.close();
  }
}

/** Adds `tablecache daemon`. */
export function addDaemonCommand(program: Command, context: CliContext): void {
  program
    .command('daemon')
    .description('keep every configured table in Redis equal to its query in Postgres, until SIGTERM or SIGINT; serves /healthz, /readyz and /metrics')
    .addOption(new Option('-c, --config <file>', 'the configuration file (YAML, JSON, or a JS/TS module)').env('TABLECACHE_CONFIG').makeOptionMandatory())
    .option('--no-standby', 'fail at start when another daemon holds a table, instead of waiting to take over when its lease expires')
    .action(context.run(runDaemon));
}
