import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type * as ReplicationPackage from 'pg-logical-replication';
import type { LogicalReplicationService } from 'pg-logical-replication';
import { TablecacheError } from '../../lib/core/errors.ts';
import { abortableDelay } from '../../lib/core/abortableDelay.ts';
import type { Logger } from '../../lib/core/logger.ts';
import { DEFAULT_RETRY_BACKOFF, retryDelayMs } from '../../lib/core/retryBackoff.ts';
import { formatLsn, parseLsn, type Lsn } from './lsn.ts';
import { PgoutputDecoder, type DecodedMessage } from './pgoutputDecoder.ts';
import { type PgoutputTransactions, type CommittedTransaction, type StreamMessage } from './pgoutputTransactions.ts';

/** The events of a {@link ReplicationStream}. */
export interface ReplicationStreamEvents {
  /** A committed transaction that changed a source table (or emitted a transactional message), in commit order. */
  transaction: [transaction: CommittedTransaction];
  /** A non-transactional message (a snapshot tick), in WAL order relative to the commits. */
  message: [message: StreamMessage];
  /**
   * The stream's position advanced ({@link ReplicationStream.receivedPosition}),
   * after the events of what it delivered up to there.
   */
  received: [position: Lsn];
  /** Streaming (again): `downMs` is 0 for the first start. */
  connected: [downMs: number];
  /** The stream broke off; it reconnects from the slot (nothing is lost: the slot keeps what was not acknowledged). */
  disconnected: [cause: Error, attempt: number];
}

/** Options of a {@link ReplicationStream}. */
export interface ReplicationStreamOptions {
  /** A direct session on the primary, by a role with the REPLICATION attribute. */
  readonly connectionString: string;
  readonly slot: string;
  readonly publication: string;
  /** Turns pgoutput messages into transactions. */
  readonly transactions: PgoutputTransactions;
  readonly logger: Logger;
  /** Reconnect delays grow from this (default 100 ms), doubling up to `retryMaxMs` (default 5,000 ms). */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /**
   * How often the acknowledged position is reported to the server, asking
   * for a reply (default 10,000 ms; below `wal_sender_timeout`). Three
   * intervals without any message from the server mean a half-open
   * connection: it is dropped and the stream reconnects.
   */
  readonly statusIntervalMs?: number;
  /**
   * Decides what to do when START_REPLICATION fails (slot missing, invalidated,
   * active elsewhere): `retry` after the usual pause, or `stop` (the error was
   * reported). Default: retry.
   */
  readonly onStartFailure?: (error: Error) => Promise<'retry' | 'stop'>;
}

/**
 * The `pgoutput` replication stream of the daemon's slot (protocol version
 * 1, the publication, messages on), over pg-logical-replication: it speaks
 * the replication protocol (CopyBoth, keepalives, standby status updates)
 * on top of pg. Reconnects with backoff forever; the slot replays everything
 * after the last acknowledged position, so a reconnect loses nothing.
 *
 * Acknowledgement is the caller's ({@link acknowledge}): the library's
 * automatic one would confirm transactions as soon as they arrive, before
 * Redis holds them. The stream's own position ({@link receivedPosition}) is
 * where everything before has been handed to the listeners.
 */
export class ReplicationStream extends EventEmitter<ReplicationStreamEvents> {
  private service: LogicalReplicationService | null = null;
  private closed = false;
  private running: Promise<void> | null = null;
  private readonly stopper = new AbortController();
  /** Everything before it was received and handed on (commits, ticks, keepalives outside a transaction). */
  private received: Lsn = 0n;
  /** What is confirmed to the server: every transaction committing before it is in Redis. */
  private confirmed: Lsn = 0n;
  private lastMessageAt: number | null = null;
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: ReplicationStreamOptions) {
    super();
  }

  /** Where the stream is: every transaction committing before it was received. */
  get receivedPosition(): Lsn {
    return this.received;
  }

  /** `performance.now()` of the last message from the server (data or keepalive), or `null`. */
  get lastMessageTime(): number | null {
    return this.lastMessageAt;
  }

  /**
   * Starts streaming from the slot (where its confirmed position is) and
   * resolves once the server streams; keeps reconnecting after that.
   * Rejects when `onStartFailure` says to stop, or the signal aborts.
   */
  async start(signal?: AbortSignal): Promise<void> {
    let resolveStarted!: () => void;
    let rejectStarted!: (error: unknown) => void;
    const started = new Promise<void>((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    const onAbort = () => rejectStarted(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const library = await loadReplicationLibrary();
    this.running = this.run(library, resolveStarted, rejectStarted);
    try {
      await started;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const intervalMs = this.options.statusIntervalMs ?? 10_000;
    this.statusTimer = setInterval(() => this.checkAlive(intervalMs), intervalMs);
    this.statusTimer.unref();
  }

  /**
   * Confirms to the server that every transaction committing before `lsn` is
   * in Redis: the slot may drop the WAL before it, and a reconnect resumes
   * there. Never moves back.
   */
  acknowledge(lsn: Lsn): void {
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    void this.sendStatus();
  }

  private async sendStatus(ping = false): Promise<void> {
    if (this.confirmed === 0n || this.service === null) return;
    // The library reports the position it is given plus one (the next byte after a received record): give it one less.
    await this.service.acknowledge(formatLsn(this.confirmed - 1n), ping).catch(() => false);
  }

  /**
   * The replication protocol's own paranoid check: each interval the status
   * update asks the server for a reply (a keepalive); a connection silent for
   * three intervals is half open (a network partition, a server gone without
   * a FIN) and is dropped, so that the stream reconnects instead of waiting
   * for data that never comes.
   */
  private checkAlive(intervalMs: number): void {
    const service = this.service;
    if (service === null) return;
    if (this.lastMessageAt !== null && performance.now() - this.lastMessageAt > 3 * intervalMs) {
      this.options.logger.warn({ slot: this.options.slot, silentMs: Math.round(performance.now() - this.lastMessageAt) }, 'the replication stream is silent; dropping the connection');
      this.lastMessageAt = performance.now();
      // Ending the client politely would wait on the dead socket: destroy the socket, which ends the subscription.
      (service as unknown as { _client?: { connection?: { stream?: { destroy(): void } } } })._client?.connection?.stream?.destroy();
      return;
    }
    void this.sendStatus(true);
  }

  private async run(library: ReplicationLibrary, started: () => void, failed: (error: unknown) => void): Promise<void> {
    let first = true;
    let downSince: number | null = null;
    for (let attempt = 0; !this.closed; ) {
      const service = new library.LogicalReplicationService(
        { connectionString: this.options.connectionString, application_name: 'tablecache-logical' },
        { acknowledge: { auto: false, timeoutSeconds: 0 } },
      );
      this.service = service;
      // The message carries the positions the stream needs (commits, logical messages): the header's text is not parsed.
      service.on('data', (_lsn: string, message: DecodedMessage) => this.take(message));
      service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => this.heartbeat(parseLsn(lsn), shouldRespond));
      // Failures end the subscription's promise below; the event would otherwise be an unhandled 'error'.
      service.on('error', () => {});
      service.on('start', () => {
        attempt = 0;
        // Silence counts from here (the paranoid check).
        this.lastMessageAt = performance.now();
        const downMs = downSince === null ? 0 : performance.now() - downSince;
        downSince = null;
        if (first) started();
        first = false;
        this.options.logger.info({ slot: this.options.slot, downMs: Math.round(downMs) }, 'streaming from the replication slot');
        this.emit('connected', downMs);
        void this.sendStatus();
      });
      const plugin = new library.PgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.publication], messages: true });
      // The library's plugin starts the stream; the daemon's own decoder reads it (see PgoutputDecoder), one per session.
      const decoder = new PgoutputDecoder((schema, table) => this.options.transactions.columnsOf(schema, table));
      (plugin as unknown as { parse(buffer: Buffer): DecodedMessage }).parse = (buffer) => decoder.decode(buffer);
      let cause: Error;
      try {
        await service.subscribe(plugin, this.options.slot);
        cause = new Error('the server ended the replication stream');
      } catch (error) {
        cause = error instanceof Error ? error : new Error(String(error));
      }
      this.service = null;
      await service.destroy().catch(() => {});
      this.options.transactions.reset();
      if (this.closed) return;
      attempt++;
      downSince ??= performance.now();
      if (!first) this.emit('disconnected', cause, attempt);
      const decision = (await this.options.onStartFailure?.(cause)) ?? 'retry';
      if (decision === 'stop') {
        if (first) failed(cause);
        return;
      }
      const delayMs = retryDelayMs(attempt - 1, { minMs: this.options.retryMinMs ?? DEFAULT_RETRY_BACKOFF.minMs, maxMs: this.options.retryMaxMs ?? DEFAULT_RETRY_BACKOFF.maxMs });
      this.options.logger.warn({ slot: this.options.slot, cause: cause.message, attempt, retryInMs: delayMs }, first ? 'waiting for the replication slot; retrying' : 'the replication stream broke off; reconnecting');
      await abortableDelay(delayMs, this.stopper.signal).catch(() => {});
    }
  }

  private take(message: DecodedMessage): void {
    this.lastMessageAt = performance.now();
    const outcome = this.options.transactions.take(message);
    if (outcome === null) return;
    if ('xid' in outcome) {
      this.emit('transaction', outcome);
      this.advanceTo(outcome.endLsn);
      return;
    }
    this.emit('message', outcome);
    if (!this.options.transactions.inTransaction) this.advanceTo(outcome.lsn);
  }

  private advanceTo(position: Lsn): void {
    if (position <= this.received) return;
    this.received = position;
    this.emit('received', position);
  }

  private heartbeat(lsn: Lsn, shouldRespond: boolean): void {
    this.lastMessageAt = performance.now();
    // Outside a transaction, the server has sent every commit before its position.
    if (!this.options.transactions.inTransaction) this.advanceTo(lsn);
    if (shouldRespond) void this.sendStatus();
  }

  /** Stops streaming and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopper.abort();
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    await this.sendStatus();
    await this.service?.destroy().catch(() => {});
    await this.running;
  }
}

type ReplicationLibrary = typeof ReplicationPackage;

/**
 * pg-logical-replication, imported when a stream starts: it is an optional
 * peer dependency that only `capture.method: logical` needs, so a daemon on
 * triggers (and every reader) runs without it.
 *
 * @throws `TC_CONFIG_INVALID` naming the package to install when it is missing.
 */
async function loadReplicationLibrary(): Promise<ReplicationLibrary> {
  try {
    return await import('pg-logical-replication');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new TablecacheError(
      'TC_CONFIG_INVALID',
      'capture.method is "logical", which streams with the package pg-logical-replication, and it is not installed: npm install pg-logical-replication (or use capture.method "triggers").',
      { cause: error },
    );
  }
}
