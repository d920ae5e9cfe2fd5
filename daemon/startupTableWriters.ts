import type { EventEmitter } from 'node:events';
import { abortableDelay } from '../lib/core/abortableDelay.ts';
import { TablecacheError } from '../lib/core/errors.ts';
import type { Logger } from '../lib/core/logger.ts';
import { retryDelayMs } from '../lib/core/retryBackoff.ts';
import type { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { LeaseLostError } from '../lib/redis/redisErrors.ts';
import type { MappedTable } from './changeMapper.ts';
import type { DaemonEvents, ReloadKind } from './daemonEvents.ts';
import type { DaemonStorage } from './daemonStorage.ts';
import { errorSource } from './errorSource.ts';
import { RefreshDbAccess } from './refreshDbAccess.ts';
import { TableSync } from './tableSync.ts';
import { WriterLeaseGroup } from './writerLeaseGroup.ts';

/** Options of {@link openTableWriters}. */
export interface StartupTableWritersOptions {
  /** The configured tables, in configuration order. */
  readonly tables: readonly (MappedTable & { readonly hashTag?: string | undefined })[];
  readonly db: PostgresAccess;
  /** Aborts the tables' running queries when the daemon stops. */
  readonly stopSignal: AbortSignal;
  readonly storage: DaemonStorage;
  readonly logger: Logger;
  readonly events: EventEmitter<DaemonEvents>;
  /** Wait for another daemon's leases instead of failing. */
  readonly standby: boolean;
  /** Aborts the start's waits. */
  readonly signal: AbortSignal;
  /** Asks for a reload of a table whose lease was lost (a no-op before the pipeline exists). */
  readonly requestReload: (table: string, reason: string, kind: ReloadKind) => void;
  /** Receives each table as soon as it is open, so that a start failing later closes it. */
  readonly opened: (table: TableSync) => void;
}

/** Why opening a table's writer may fail and heal by itself: Redis down or slow, or the lease lost to a restart meanwhile. */
const RETRIED_AT_OPEN: ReadonlySet<string> = new Set(['TC_CONNECTION_FAILED', 'TC_TIMEOUT', 'TC_LEASE_LOST']);

/**
 * Opens every table's writer at start, in configuration order, taking its
 * lease (as a standby: waiting for it), all held as one
 * ({@link WriterLeaseGroup}: the daemon writes every table or none).
 *
 * @throws `LeaseHeldError` (`TC_LEASE_HELD`) when another daemon writes a table and `standby` is off.
 * @throws the signal's reason when `signal` aborts.
 */
export async function openTableWriters(options: StartupTableWritersOptions): Promise<void> {
  const { logger, requestReload } = options;
  const leases = new WriterLeaseGroup({ logger, requestReload: (name, reason) => requestReload(name, reason, 'lease_lost') });
  for (const table of options.tables) {
    const opened = await openTable(options, {
      ...table,
      db: new RefreshDbAccess(options.db, options.db.pool, options.stopSignal),
      pool: options.db.pool,
      storage: options.storage,
      logger,
      events: options.events,
      standby: options.standby,
      signal: options.signal,
      leases,
      onLeaseLost: (name, error) =>
        error instanceof LeaseLostError && error.dataLost
          ? requestReload(name, 'Redis lost the writer lease with the table data (eviction, flush or restart)', 'storage_lost')
          : requestReload(name, 'the writer lease was lost', 'lease_lost'),
    });
    options.opened(opened);
  }
}

/**
 * Opens a table's writer; a Redis that fails while a standby waits (or
 * between connecting and opening) is waited for too, instead of ending the
 * start: an orchestrator that restarts a daemon failing at start would turn
 * a Redis outage into a crash loop. So is a lease lost while opening (Redis
 * restarted or flushed between taking the lease and recovering the table):
 * the next attempt takes it again, or, when another daemon took it, fails
 * with `TC_LEASE_HELD` (or waits, as a standby) like a first attempt.
 */
async function openTable(startup: StartupTableWritersOptions, options: Parameters<typeof TableSync.open>[0]): Promise<TableSync> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TableSync.open(options);
    } catch (error) {
      if (!(error instanceof TablecacheError) || errorSource(error) !== 'redis' || !RETRIED_AT_OPEN.has(error.code)) throw error;
      const retryInMs = retryDelayMs(attempt - 1);
      startup.logger.warn({ table: options.name, cause: error.message, attempt, retryInMs }, 'waiting for Redis to open the table for writing');
      startup.events.emit('waiting', { for: 'redis', detail: `${startup.storage.description} (${error.message}; attempt ${attempt})` });
      await abortableDelay(retryInMs, options.signal);
    }
  }
}
