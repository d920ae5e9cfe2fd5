import { EventEmitter } from 'node:events';
import pgListen, { type Subscriber } from 'pg-listen';
import type { Logger } from '../lib/core/logger.ts';
import { DEFAULT_RETRY_BACKOFF, retryDelayMs, type RetryBackoffPolicy } from '../lib/core/retryBackoff.ts';

/** Payload types per channel, for pg-listen: raw text, since `parse` returns it as it is. */
type ChannelPayloads = Record<string, string>;

/** The events of a {@link ChangeListener}. */
export interface ChangeListenerEvents {
  /** The raw text of a notification on the channel, in commit order, and the process id of the backend that sent it. */
  notification: [text: string, processId: number];
  /**
   * LISTEN is active again after the connection was lost. Notifications sent
   * meanwhile are gone: whoever relies on them must resync.
   */
  reconnected: [downMs: number, attempts: number];
  /** The connection was lost; reconnecting (attempt counts from 1). */
  reconnecting: [attempt: number];
}

/** Options of {@link ChangeListener.start}. */
export interface ChangeListenerOptions {
  /** A direct session on the primary (not through a transaction-mode pooler). */
  readonly connectionString: string;
  readonly channel: string;
  readonly logger: Logger;
  /** Shown in `pg_stat_activity.application_name` (default `tablecache-listener`). */
  readonly applicationName?: string;
  /** How often an idle connection is checked with a query, catching half-open connections (default 10,000 ms). */
  readonly paranoidCheckMs?: number;
  /** Reconnect delays grow from this (default 100 ms) … */
  readonly retryMinMs?: number;
  /** … doubling up to this (default 5,000 ms). */
  readonly retryMaxMs?: number;
  /** Called before each retry of {@link ChangeListener.start} with what failed, e.g. `connect ECONNREFUSED 127.0.0.1:5432`. */
  readonly onRetry?: (attempt: number, cause: string, retryInMs: number) => void;
}

/**
 * LISTENs on the daemon's channel with pg-listen (1.7.0), configured so it
 * never gives up and never interprets a payload:
 *
 * - `parse` returns the raw text: the daemon classifies payloads itself, so
 *   a malformed one is counted and skipped instead of becoming an `error`
 *   event;
 * - `retryLimit: Infinity` and `retryTimeout: 0`: pg-listen's default
 *   `retryTimeout` of 3 s would stop reconnecting for good after a short
 *   outage; reconnect delays back off to `retryMaxMs`;
 * - `paranoidChecking`: a periodic query notices a half-open connection
 *   that would otherwise wait silently for notifications that never come.
 *
 * pg-listen re-LISTENs after reconnecting and then emits `connected`; that
 * is when {@link ChangeListenerEvents.reconnected} fires. Should pg-listen
 * fail to re-LISTEN on a new connection (it then stays connected but deaf),
 * the listener is replaced by a fresh one.
 */
export class ChangeListener extends EventEmitter<ChangeListenerEvents> {
  private subscriber: Subscriber<ChannelPayloads> | null = null;
  private closed = false;
  private downSince: number | null = null;
  private attempts = 0;

  private constructor(private readonly options: ChangeListenerOptions) {
    super();
  }

  /**
   * Connects and LISTENs, retrying with backoff until it succeeds or the
   * signal aborts: a daemon started before its database waits for it.
   */
  static async start(options: ChangeListenerOptions, signal?: AbortSignal): Promise<ChangeListener> {
    const listener = new ChangeListener(options);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        await listener.connect();
        return listener;
      } catch (error) {
        const delayMs = retryDelayMs(attempt, listener.backoff);
        const cause = errorText(error);
        options.logger.warn({ cause, attempt: attempt + 1, retryInMs: delayMs }, 'waiting for Postgres: could not LISTEN; retrying');
        options.onRetry?.(attempt + 1, cause, delayMs);
        await sleep(delayMs, signal);
      }
    }
  }

  private get backoff(): RetryBackoffPolicy {
    return { minMs: this.options.retryMinMs ?? DEFAULT_RETRY_BACKOFF.minMs, maxMs: this.options.retryMaxMs ?? DEFAULT_RETRY_BACKOFF.maxMs };
  }

  private async connect(): Promise<void> {
    // pg-listen is CommonJS with `exports.default`: ESM receives the exports object.
    const subscriber = pgListen.default<ChannelPayloads>(
      { connectionString: this.options.connectionString, application_name: this.options.applicationName ?? 'tablecache-listener' },
      {
        parse: (text: string) => text,
        retryLimit: Infinity,
        retryTimeout: 0,
        retryInterval: (attempt: number) => retryDelayMs(attempt, this.backoff),
        paranoidChecking: this.options.paranoidCheckMs ?? 10_000,
      },
    );
    // The raw event, not `notifications`: it also carries the sender's process id (for daemon.verifySenders).
    subscriber.events.on('notification', ({ channel, payload, processId }: { channel: string; payload?: string; processId: number }) => {
      if (channel === this.options.channel) this.emit('notification', payload ?? '', processId);
    });
    subscriber.events.on('reconnect', (attempt: number) => {
      this.downSince ??= performance.now();
      this.attempts = attempt;
      this.options.logger.warn({ channel: this.options.channel, attempt }, 'lost the LISTEN connection; reconnecting');
      this.emit('reconnecting', attempt);
    });
    subscriber.events.on('connected', () => {
      if (this.downSince === null) return;
      const downMs = performance.now() - this.downSince;
      this.downSince = null;
      this.options.logger.info({ channel: this.options.channel, downMs: Math.round(downMs), attempts: this.attempts }, 'LISTEN is active again');
      this.emit('reconnected', downMs, this.attempts);
    });
    subscriber.events.on('error', (error: Error) => this.onError(subscriber, error));
    try {
      await subscriber.connect();
      await subscriber.listenTo(this.options.channel);
    } catch (error) {
      await subscriber.close().catch(() => {});
      throw error;
    }
    this.subscriber = subscriber;
  }

  /**
   * pg-listen emits `error` when re-initialising after a connection loss
   * failed (its reconnect loop itself never ends with our options): the
   * connection may be up without LISTEN. A fresh subscriber is the way back.
   */
  private onError(subscriber: Subscriber<ChannelPayloads>, error: Error): void {
    if (this.closed || subscriber !== this.subscriber) return;
    this.options.logger.error({ err: error, channel: this.options.channel }, 'the LISTEN connection failed to recover; starting a new one');
    this.subscriber = null;
    if (this.downSince === null) this.emit('reconnecting', 1);
    this.downSince ??= performance.now();
    void subscriber.close().catch(() => {});
    void this.replace();
  }

  private async replace(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.connect();
        const downMs = performance.now() - (this.downSince ?? performance.now());
        this.downSince = null;
        this.emit('reconnected', downMs, attempt + 1);
        return;
      } catch (error) {
        const delayMs = retryDelayMs(attempt, this.backoff);
        this.options.logger.warn({ err: error, attempt: attempt + 1, retryInMs: delayMs }, 'could not LISTEN on Postgres; retrying');
        await sleep(delayMs);
      }
    }
  }

  /** Stops listening and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const subscriber = this.subscriber;
    this.subscriber = null;
    await subscriber?.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** An error's message; Node reports a refused connection to a name with several addresses as an AggregateError with an empty one. */
function errorText(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(errorText).join('; ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
