import path from 'node:path';
import type { Logger } from 'pino';
import type { ConfigInput, TablecacheConfig } from './config/configSchema.ts';
import { parseConfig } from './config/loadConfig.ts';
import { createDaemonLogger } from './daemonLogger.ts';
import type { DaemonEvents } from './daemonEvents.ts';
import type { DaemonStorage } from './daemonStorage.ts';
import { DaemonMetrics } from './http/daemonMetrics.ts';
import { HealthServer } from './http/healthServer.ts';
import type { DaemonReadiness } from './daemonReadiness.ts';
import { TablecacheDaemon } from './tablecacheDaemon.ts';

/** Listeners for a daemon's events, attached before it starts, so that none is missed. */
export type DaemonListeners = { readonly [E in keyof DaemonEvents]?: (...args: DaemonEvents[E]) => void };

/** Options of {@link startDaemon}. */
export interface StartDaemonOptions {
  /**
   * Where the daemon logs (pass your service's pino logger, or a child of it).
   * Default: JSON lines on stdout at the configuration's `daemon.logLevel`.
   */
  readonly logger?: Logger;
  /**
   * Serve `/healthz`, `/readyz` and `/metrics` on the configuration's
   * `daemon.http` address (default false: a service usually has an HTTP
   * server of its own; use {@link RunningDaemon.readiness} and
   * {@link RunningDaemon.metrics} there).
   */
  readonly http?: boolean;
  /** Wait for another daemon's writer leases instead of failing with `TC_LEASE_HELD` (default true, as `tablecache daemon`). */
  readonly standby?: boolean;
  /** Aborts a start that waits (for Postgres, Redis, or as a standby); the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Event listeners attached before the start (later ones: `running.daemon.on(…)`). */
  readonly on?: DaemonListeners;
  /** Values for `${VAR}` in the configuration (default: `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Relative `module` and TLS file paths are resolved against this directory (default: the working directory). */
  readonly baseDirectory?: string;
  /** Keep the tables somewhere else than the configured Redis, e.g. a `LocalDaemonStorage` in this process. */
  readonly storage?: DaemonStorage;
}

/** A daemon running in this process, as {@link startDaemon} returns it. */
export interface RunningDaemon extends AsyncDisposable {
  /** The daemon itself: an `EventEmitter` of {@link DaemonEvents} (`running.daemon.on('batchApplied', …)`). */
  readonly daemon: TablecacheDaemon;
  /** The validated configuration, defaults applied. */
  readonly config: TablecacheConfig;
  /** Its Prometheus metrics, in a registry of their own (`metrics.registry`; merge it into yours with prom-client's `Registry.merge`). */
  readonly metrics: DaemonMetrics;
  /** Where `/healthz`, `/readyz` and `/metrics` are served (`http: true`), else null. */
  readonly httpUrl: string | null;
  /** Whether every table is loaded and LISTEN is connected, and if not, why not (what `/readyz` reports). */
  readiness(): DaemonReadiness;
  /**
   * Finishes the steps under way, stops listening, releases the writer
   * leases (a standby takes over at once; readers keep the published data),
   * closes the connections and the HTTP server. Idempotent.
   */
  stop(): Promise<void>;
}

/** Names the configuration in error messages, where a file would be named. */
const CONFIG_ORIGIN_NAME = '(configuration passed to startDaemon)';

/**
 * Runs the daemon inside this process, from a configuration object of the
 * same shape as the configuration file (see `defineConfig` in
 * `tablecache/config`): for a service that keeps its tables cached without a
 * separate `tablecache daemon` process.
 *
 * Resolves once the start is done: every writer lease held and LISTEN
 * active. The loads go on in the background: `readiness().ready` turns true,
 * and a `loaded` event is emitted per table, when readers see them. Unlike
 * the CLI it handles no signals: call {@link RunningDaemon.stop} when your
 * service shuts down. A failure retrying cannot heal (with `capture.method:
 * logical`, its slot gone and impossible to create again) stops the daemon
 * by itself after a `fatal` event (`on: { fatal: ({ error }) => … }`):
 * `readiness()` then says `stopped`.
 *
 * @throws `ConfigError` (`TC_CONFIG_INVALID`) naming every bad key of `config` and what was expected, or a table whose Indexes cannot be built.
 * @throws `ConfigError` when `http` is set and the address cannot be listened on.
 * @throws `LeaseHeldError` (`TC_LEASE_HELD`) when another daemon writes a table and `standby` is false.
 * @throws the signal's reason when `signal` aborts the start.
 * @example
 * ```ts
 * import { startDaemon } from 'tablecache/daemon';
 * const running = await startDaemon(
 *   {
 *     postgres: { url: process.env.DATABASE_URL },
 *     redis: { url: process.env.REDIS_URL },
 *     tables: { users: { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } },
 *   },
 *   { logger: serviceLogger.child({ component: 'tablecache' }), on: { loaded: (event) => serviceLogger.info(event, 'cached') } },
 * );
 * process.once('SIGTERM', () => void running.stop());
 * ```
 */
export async function startDaemon(config: ConfigInput, options: StartDaemonOptions = {}): Promise<RunningDaemon> {
  const baseDirectory = path.resolve(options.baseDirectory ?? process.cwd());
  const parsed = parseConfig(config, { file: path.join(baseDirectory, CONFIG_ORIGIN_NAME), baseDirectory, ...(options.env ? { env: options.env } : {}) });
  const logger = options.logger ?? createDaemonLogger({ level: parsed.daemon.logLevel, pretty: false }).logger;
  const daemon = new TablecacheDaemon(parsed, {
    logger,
    standby: options.standby ?? true,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.storage ? { storage: options.storage } : {}),
  });
  for (const [event, listener] of Object.entries(options.on ?? {})) {
    daemon.on(event as keyof DaemonEvents, listener as (...args: unknown[]) => void);
  }
  // The host process exports its own process_* metrics, if any.
  const metrics = new DaemonMetrics(daemon, { processMetrics: false });
  let server: HealthServer | null = null;
  try {
    if (options.http === true) server = await HealthServer.start({ ...parsed.daemon.http, daemon, metrics, logger });
    await daemon.start();
  } catch (error) {
    // A failed start released the daemon's connections itself.
    if (daemon.currentPhase !== 'stopped') await daemon.close();
    metrics.close();
    await server?.close();
    throw error;
  }
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      try {
        await daemon.close();
      } finally {
        metrics.close();
        await server?.close();
      }
    })();
    return stopping;
  };
  return {
    daemon,
    config: parsed,
    metrics,
    httpUrl: server?.url ?? null,
    readiness: () => daemon.readiness(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
