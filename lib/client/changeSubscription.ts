import type { Redis } from 'ioredis';
import { TablecacheError } from '../core/errors.ts';
import { parseChangeAnnouncement, type NearCache } from './nearCache.ts';

/** How long to wait before trying again when (re)subscribing failed on a connection that is up. */
const RESYNC_RETRY_MS = 200;

/**
 * Keeps a near-cache subscribed to its table's change channel, on a
 * connection of its own (a subscribed connection can send nothing else).
 *
 * On every (re)connect it subscribes, then reads the table's current step
 * through the reader, and only then lets the cache fill: every step after
 * that read arrives on the subscription, which was already in place. When
 * the connection drops the cache is emptied and bypassed until this has
 * happened again (ioredis reconnects in the background).
 */
export class ChangeSubscription {
  /** Counts connection changes, so a sync that a drop overtook does not activate the cache. */
  private generation = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The first sync's outcome, for `openReader` to report a refused SUBSCRIBE. */
  private readonly firstSync: Promise<void>;
  private settleFirstSync!: (error?: unknown) => void;
  private firstSettled = false;

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly cache: NearCache<unknown>,
    private readonly currentStep: () => Promise<number>,
  ) {
    this.firstSync = new Promise<void>((resolve, reject) => {
      this.settleFirstSync = (error) => {
        if (this.firstSettled) return;
        this.firstSettled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      // performance.timeOrigin + now(): µs resolution on the wall clock, to compare with Redis's TIME.
      this.cache.apply(parseChangeAnnouncement(message), (performance.timeOrigin + performance.now()) * 1000);
    });
    subscriber.on('ready', () => this.sync());
    subscriber.on('close', () => this.lost());
    subscriber.on('error', () => {});
  }

  /** Connects and completes the first subscription; rejects when Redis refuses SUBSCRIBE (an ACL without the channel, say). */
  async start(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      // A slow first sync is not an error: the cache stays bypassed until it completes.
      timer = setTimeout(resolve, timeoutMs);
    });
    this.subscriber.connect().catch(() => {});
    try {
      await Promise.race([this.firstSync, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Empties the cache and establishes the step again (subscribe, read the
   * step), as after a reconnect: for when the caller could not learn what
   * the cache must not answer from before (a failed read after a barrier).
   */
  resync(): void {
    if (this.subscriber.status === 'ready') this.sync();
    else this.cache.deactivate();
  }

  /** Unsubscribes and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.cache.deactivate();
    this.subscriber.disconnect();
  }

  private lost(): void {
    this.generation++;
    this.cache.deactivate();
  }

  private sync(): void {
    if (this.closed) return;
    const generation = ++this.generation;
    this.cache.deactivate();
    void (async () => {
      try {
        await this.subscriber.subscribe(this.channel);
      } catch (error) {
        if (error instanceof Error && /NOPERM/.test(error.message)) {
          // Refused: the cache stays bypassed; openReader reports it when this is its first subscription.
          this.settleFirstSync(
            new TablecacheError(
              'TC_STORAGE_FAILED',
              `Redis refused to subscribe to the change channel "${this.channel}" the near-cache needs: ${error.message}. ` +
                'Grant the reader\'s user that channel (ACL "&{tablecache:*" and "+subscribe"; docs/redis-key-layout.md), or open the reader without nearCache.',
              { cause: error },
            ),
          );
          return;
        }
        this.retryLater(generation);
        return;
      }
      // openReader waits for the first SUBSCRIBE only; the cache is used once the step below is known.
      this.settleFirstSync();
      if (generation !== this.generation || this.closed) return;
      try {
        const step = await this.currentStep();
        if (generation !== this.generation || this.closed) return;
        this.cache.activate(step);
      } catch {
        // The reader's connection may be down (or the table in an unknown format) while this one is up.
        this.retryLater(generation);
      }
    })();
  }

  private retryLater(generation: number): void {
    if (generation !== this.generation || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (generation === this.generation) this.retrySync();
    }, RESYNC_RETRY_MS);
    this.retryTimer.unref();
  }

  private retrySync(): void {
    if (this.subscriber.status === 'ready') this.sync();
  }
}
