import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { TablecacheError } from '../../lib/core/errors.ts';
import { DEFAULT_RETRY_BACKOFF, retryDelayMs } from '../../lib/core/retryBackoff.ts';
import type { Logger } from '../../lib/core/logger.ts';
import type { ChangePipeline } from '../changePipeline.ts';
import type { DaemonEvents } from '../daemonEvents.ts';
import type { CaptureSlotMetrics } from '../http/daemonMetrics.ts';
import type { CapturePositions } from '../tableStepLoop.ts';
import type { TableSync } from '../tableSync.ts';
import { unpublishedSources } from '../../sql-triggers/logicalCaptureState.ts';
import type { SourceTableSpec } from '../../sql-triggers/triggerSpec.ts';
import { formatLsn, fullXid, parseLsn, type Lsn } from './lsn.ts';
import { PgoutputTransactions, type CommittedTransaction, type StreamMessage } from './pgoutputTransactions.ts';
import { readSlot, readSlotDistances, recreateSlot, takeSlotOver } from './replicationSlot.ts';
import { ReplicationStream } from './replicationStream.ts';

/** Options of a {@link LogicalChangeSource}. */
export interface LogicalChangeSourceOptions {
  /** A direct session on the primary by a role with the REPLICATION attribute (the stream). */
  readonly connectionString: string;
  /** The daemon's pool (slot checks, creating the slot). */
  readonly pool: pg.Pool;
  readonly slot: string;
  readonly publication: string;
  /** Messages with this prefix are the daemon's: ticks and barriers (the trigger channel's name). */
  readonly channel: string;
  /** The source tables with their key columns and column filters. */
  readonly sources: readonly SourceTableSpec[];
  /** Keys of one source in one transaction beyond which its tables are reloaded instead. */
  readonly maxKeysPerTransaction: number;
  readonly tables: readonly TableSync[];
  /** Whether this daemon holds every table's writer lease now (then it may end another session's stream of the slot). */
  readonly holdsTables: () => Promise<boolean>;
  /** Every step that waits for a tick while the stream reconnects fails and is retried. */
  readonly onStreamReset: () => void;
  /** The stream handed the pipeline every transaction committing before `position` (`PostgresStepSnapshots.streamReached`: steps need no tick of their own). */
  readonly onStreamed: (position: bigint) => void;
  /** The stream stopped for good while running: the slot is gone and cannot be created again, or the role may not stream. */
  readonly onFatal: (error: TablecacheError) => void;
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
}

/** SQLSTATEs of START_REPLICATION failures the source acts on. */
const OBJECT_IN_USE = '55006';
const UNDEFINED_OBJECT = '42704';
const NOT_IN_PREREQUISITE_STATE = '55000';
const INSUFFICIENT_PRIVILEGE = '42501';
const CONFIGURATION_LIMIT_EXCEEDED = '53400';

/**
 * What is wrong when creating or streaming the slot failed in a way retrying
 * cannot heal, with its fix, or `null` when it may heal (a connection lost,
 * a transaction the creation waited for). An operator has to act: the
 * daemon stops with `TC_CAPTURE_SETUP` (exit 5) instead of retrying, not
 * ready, forever.
 */
function unrecoverableSlotFailure(error: Error, slot: string): string | null {
  const code = (error as { code?: string }).code;
  if (code === INSUFFICIENT_PRIVILEGE) {
    return `the daemon's role may not create or stream the replication slot ${slot} (${error.message}): give it REPLICATION (ALTER ROLE … REPLICATION) and start the daemon again`;
  }
  if (code === CONFIGURATION_LIMIT_EXCEEDED) {
    return `the replication slot ${slot} is gone and every replication slot is taken (${error.message}): drop an unused slot or raise max_replication_slots (a restart), then start the daemon again (it creates the slot and reloads)`;
  }
  if (code === NOT_IN_PREREQUISITE_STATE && /wal_level/.test(error.message)) {
    return `the replication slot ${slot} cannot be created (${error.message}): ALTER SYSTEM SET wal_level = logical, restart Postgres, then start the daemon again`;
  }
  return null;
}

/**
 * The logical-decoding change source (`capture.method: logical`): streams
 * the daemon's `pgoutput` slot ({@link ReplicationStream}), turns each
 * committed transaction into trigger-style payloads (the same mapper serves
 * both sources) and hands them to the pipeline with their commit positions;
 * the daemon's own messages (prefix = the channel) are ticks and barriers.
 *
 * Positions ({@link CapturePositions}): a table's position moves after a
 * step made everything committed before it visible in Redis, and is saved
 * with the table's generation; the slot is acknowledged up to the least
 * saved position over all tables, so a restarted daemon resumes each table
 * whose saved position is at or past the slot's (no reload), and reloads
 * the others. A missing or invalidated slot is created anew and every table
 * reloaded; another session streaming the slot is ended once this daemon
 * holds every table's lease (the lease decides who writes, so it decides
 * who streams).
 */
export class LogicalChangeSource implements CapturePositions {
  private readonly stream: ReplicationStream;
  private readonly transactions: PgoutputTransactions;
  private pipeline: ChangePipeline | null = null;
  /** A recent 64-bit transaction id, to widen the stream's 32-bit ones. */
  private xidReference = 0n;
  /** Per table, the position saved with its generation in Redis. */
  private readonly saved = new Map<string, Lsn>();
  private started = false;
  /** Set by {@link close}: ends a wait for the tables ({@link untilHoldingTables}). */
  private closing = false;
  /** Why the stream stopped for good, once it did. */
  private fatal: TablecacheError | null = null;

  constructor(private readonly options: LogicalChangeSourceOptions) {
    this.transactions = new PgoutputTransactions({
      sources: options.sources,
      maxKeys: options.maxKeysPerTransaction,
      onCoarse: (source, why) => options.logger.warn({ source }, `changes of ${source} cannot be mapped by key (${why}); reloading the tables it feeds on each change`),
      xidText: (xid) => fullXid(xid, this.xidReference).toString(),
    });
    this.stream = new ReplicationStream({
      connectionString: options.connectionString,
      slot: options.slot,
      publication: options.publication,
      transactions: this.transactions,
      logger: options.logger,
      onStartFailure: (error) => this.onStartFailure(error),
    });
    this.stream.on('transaction', (transaction) => this.onTransaction(transaction));
    this.stream.on('message', (message) => this.onMessage(message));
    this.stream.on('received', (position) => options.onStreamed(position));
    this.stream.on('disconnected', (_cause, attempt) => {
      options.onStreamReset();
      options.events.emit('connectionLost', { source: 'postgres', attempt });
    });
    this.stream.on('connected', (downMs) => {
      if (!this.started) return;
      // The slot replays everything not acknowledged: nothing to reload.
      options.onStreamReset();
      options.events.emit('connectionRestored', { source: 'postgres' });
      options.events.emit('listenerReconnected', { downMs, attempts: 1 });
    });
  }

  /** Where the stream is: every transaction committing before it has been handed to the pipeline. */
  current(): bigint {
    return this.stream.receivedPosition;
  }

  /** The slot's lag and retained WAL, and the time since the stream's last message; `null` when the slot is gone. */
  async slotStatus(): Promise<CaptureSlotMetrics | null> {
    const distances = await readSlotDistances(this.options.pool, this.options.slot);
    if (distances === null) return null;
    const last = this.stream.lastMessageTime;
    return { ...distances, secondsSinceLastMessage: last === null ? null : (performance.now() - last) / 1000 };
  }

  /** A tick's 64-bit transaction id: a recent one. */
  observeXid(xid: bigint): void {
    if (xid > this.xidReference) this.xidReference = xid;
  }

  /**
   * Checks the publication and the slot (creating the slot anew when it is
   * missing or invalidated) and decides which tables resume from Redis: those
   * whose saved position is at or past the slot's. Returns their names.
   *
   * @throws `TC_CONFIG_INVALID` when the publication is missing or does not publish every source table, or the slot is missing and cannot be created.
   */
  async prepare(): Promise<Set<string>> {
    const { pool, slot, publication, logger } = this.options;
    const { rows } = await pool.query<{ xmax: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax');
    this.observeXid(BigInt(rows[0]!.xmax));
    const unpublished = await unpublishedSources(pool, publication, this.options.sources);
    if (unpublished === null) {
      throw new TablecacheError('TC_CONFIG_INVALID', `The publication "${publication}" does not exist: run \`tablecache capture install\` (capture.method is logical).`);
    }
    if (unpublished.length > 0) {
      throw new TablecacheError(
        'TC_CONFIG_INVALID',
        `The publication "${publication}" does not publish source table(s) ${unpublished.join(', ')}, so their changes would never reach the daemon: run \`tablecache capture install\` (it adds the tables the configuration names).`,
      );
    }
    const state = await readSlot(pool, slot);
    if (state !== null && state.plugin !== 'pgoutput') {
      throw new TablecacheError('TC_CONFIG_INVALID', `The replication slot "${slot}" uses plugin ${state.plugin ?? '(physical)'}, not pgoutput: drop it, or name another in capture.slot.`);
    }
    if (state === null || state.walStatus === 'lost' || state.confirmedFlush === null) {
      const why = state === null ? 'does not exist' : 'was invalidated (wal_status lost: it fell behind by more than max_slot_wal_keep_size)';
      logger.error({ slot }, `the replication slot ${why}; creating it anew and reloading every table`);
      try {
        await recreateSlot(pool, slot);
      } catch (error) {
        const unrecoverable = unrecoverableSlotFailure(error as Error, slot);
        if (unrecoverable !== null) throw new TablecacheError('TC_CAPTURE_SETUP', unrecoverable, { cause: error });
        throw new TablecacheError('TC_CONFIG_INVALID', `The replication slot "${slot}" ${why} and could not be created (${(error as Error).message}): run \`tablecache capture install\`.`, {
          cause: error,
        });
      }
      const created = await readSlot(pool, slot);
      if (created?.confirmedFlush != null) this.stream.acknowledge(created.confirmedFlush);
      return new Set();
    }
    // Until every table saved a position, keepalive replies repeat the slot's own.
    this.stream.acknowledge(state.confirmedFlush);
    const resumed = new Set<string>();
    for (const table of this.options.tables) {
      const saved = await table.savedPosition();
      const position = saved === null ? null : parseLsn(saved);
      if (position === null || position < state.confirmedFlush!) continue;
      this.saved.set(table.name, position);
      resumed.add(table.name);
    }
    logger.info({ slot, confirmedFlush: formatLsn(state.confirmedFlush!), resumed: [...resumed] }, 'resuming from the replication slot');
    return resumed;
  }

  /** Streams into `pipeline`; resolves once the server streams. */
  async start(pipeline: ChangePipeline, signal?: AbortSignal): Promise<void> {
    this.pipeline = pipeline;
    try {
      await this.stream.start(signal);
    } catch (error) {
      throw this.fatal ?? error;
    }
    this.started = true;
  }

  async reached(table: string, position: bigint): Promise<void> {
    if (position === 0n) return;
    const before = this.saved.get(table);
    if (before !== undefined && position <= before) return;
    const sync = this.options.tables.find((candidate) => candidate.name === table);
    if (sync === undefined) return;
    await sync.savePosition(formatLsn(position));
    this.saved.set(table, position);
    this.acknowledge();
  }

  /** Acknowledges the least saved position: every table holds every transaction committing before it. */
  private acknowledge(): void {
    if (this.saved.size < this.options.tables.length) return;
    let least: Lsn | null = null;
    for (const position of this.saved.values()) if (least === null || position < least) least = position;
    if (least !== null) this.stream.acknowledge(least);
  }

  private onTransaction(transaction: CommittedTransaction): void {
    const pipeline = this.pipeline;
    if (pipeline === null) return;
    for (const payload of transaction.payloads) pipeline.pushChange(payload, transaction.commitLsn);
    for (const message of transaction.messages) this.onMessage(message);
  }

  private onMessage(message: StreamMessage): void {
    if (message.prefix !== this.options.channel) return;
    this.pipeline?.push(message.text);
  }

  /**
   * Returns once this daemon holds its tables (at once, usually), or once the
   * source is closed. A daemon that gave its tables up (another daemon took a
   * lease while Redis was lost) must not stream the slot: the daemon holding
   * the tables takes the slot over, and a reconnect here took it back, over
   * and over. Redis unreachable counts as not holding them.
   */
  private async untilHoldingTables(): Promise<void> {
    for (let attempt = 0; !this.closing && !(await this.options.holdsTables().catch(() => false)); attempt++) {
      if (attempt === 0) this.options.logger.warn({ slot: this.options.slot }, 'this daemon holds none of its tables now; the slot waits until it holds them again');
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt, DEFAULT_RETRY_BACKOFF)));
    }
  }

  private async onStartFailure(error: Error): Promise<'retry' | 'stop'> {
    const code = (error as { code?: string }).code;
    const { pool, slot, logger } = this.options;
    try {
      if (this.started) await this.untilHoldingTables();
      if (code === OBJECT_IN_USE) {
        if (await this.options.holdsTables()) {
          const ended = await takeSlotOver(pool, slot);
          logger.warn({ slot, ended }, 'another session streams the replication slot; this daemon holds the tables, so it takes the slot over');
        }
        return 'retry';
      }
      if (code === UNDEFINED_OBJECT && /publication/.test(error.message)) {
        await this.onPublicationMissing(error);
        return 'retry';
      }
      const unrecoverable = unrecoverableSlotFailure(error, slot);
      if (unrecoverable !== null) return this.stop(unrecoverable, error);
      const slotGone = (code === UNDEFINED_OBJECT && /replication slot/.test(error.message)) || (code === NOT_IN_PREREQUISITE_STATE && /replication slot/.test(error.message));
      if (slotGone) {
        logger.error({ slot, cause: error.message }, 'the replication slot is missing or invalidated; creating it anew and reloading every table');
        try {
          await recreateSlot(pool, slot);
        } catch (failure) {
          const cannot = unrecoverableSlotFailure(failure as Error, slot);
          if (cannot !== null) return this.stop(cannot, failure);
          throw failure;
        }
        this.saved.clear();
        this.pipeline?.requestReload(null, `the replication slot ${slot} was missing or invalidated and was created anew`, 'slot_recreated');
      }
    } catch (failure) {
      logger.error({ slot, err: failure }, 'could not recover the replication slot; retrying');
    }
    return 'retry';
  }

  /** Ends the stream for good: reported to the daemon when it runs, else the start rejects with it. */
  private stop(message: string, cause: unknown): 'stop' {
    this.fatal = new TablecacheError('TC_CAPTURE_SETUP', message, { cause });
    this.options.logger.error({ slot: this.options.slot, err: cause }, message);
    if (this.started) this.options.onFatal(this.fatal);
    return 'stop';
  }

  /**
   * The WAL sender found the publication missing while decoding a change.
   * While it is missing, retrying is all there is (the capture check reports
   * it, naming `tablecache capture install`). Once it exists again the slot
   * is still stuck: Postgres decodes each change with the publications of
   * its time, so the change made without one fails again at every
   * reconnect. The slot is created anew at the end of WAL and every table
   * reloaded: what was changed meanwhile never reached the daemon.
   */
  private async onPublicationMissing(error: Error): Promise<void> {
    const { pool, slot, publication, logger } = this.options;
    const { rows } = await pool.query<{ exists: boolean }>('SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = $1) AS exists', [publication]);
    if (!rows[0]!.exists) {
      logger.error({ slot, publication, cause: error.message }, 'the publication is missing: the stream cannot go on until `tablecache capture install` creates it again; retrying');
      return;
    }
    logger.error({ slot, publication, cause: error.message }, 'the publication was dropped and created again: the slot cannot decode past the drop; creating the slot anew and reloading every table');
    await recreateSlot(pool, slot);
    this.saved.clear();
    this.pipeline?.requestReload(null, `the publication ${publication} was dropped and created again, so the slot ${slot} was created anew`, 'slot_recreated');
  }

  /** Stops streaming (after a last acknowledgement). */
  async close(): Promise<void> {
    this.closing = true;
    await this.stream.close();
  }
}
