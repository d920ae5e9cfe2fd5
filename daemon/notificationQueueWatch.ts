import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../lib/core/logger.ts';
import type { DaemonEvents } from './daemonEvents.ts';

/** Options of a {@link NotificationQueueWatch}. */
export interface NotificationQueueWatchOptions {
  /** Any connection to the cluster: the queue is cluster-wide. */
  readonly pool: pg.Pool;
  /** The usage at which the triggers stop sending (`triggers.maxQueueUsage`). */
  readonly silentAt: number;
  /** The usage from which a warning is logged (default half of `silentAt`). */
  readonly warnAt?: number;
  /** How often the usage is read (default 5,000 ms). */
  readonly intervalMs?: number;
  readonly logger: Logger;
  /** Receives `notificationQueueUsage` after every reading. */
  readonly events: EventEmitter<DaemonEvents>;
  /**
   * The usage fell below `silentAt` after a reading at or above it: the
   * triggers sent nothing meanwhile, so the changes of that time are lost to
   * the daemon and every table must be reloaded.
   */
  readonly onTriggersResumed: (peakUsage: number) => void;
}

type Level = 'normal' | 'filling' | 'silent';

/**
 * Watches `pg_notification_queue_usage()`. Postgres' notification queue
 * (8 GB, cluster-wide) fills when any listener stops reading; once it is
 * full, every notifying transaction fails at commit. The triggers therefore
 * fall silent at `triggers.maxQueueUsage`, and this watch is how the daemon
 * learns that it missed changes: one log line when the queue starts filling
 * (naming the likely cause), one when the triggers fall silent, a reload of
 * every table when they send again, and a reading for the metric every time.
 *
 * The reload is requested once the usage is seen back below the threshold:
 * a reload started while the triggers are still silent would miss what they
 * keep dropping. A transaction whose trigger ran while silent and that
 * commits after the reload's snapshot is still missed; such a window is as
 * long as the longest transaction, so keep `triggers.maxQueueUsage` well
 * below 1 and act on the first warning.
 */
export class NotificationQueueWatch {
  private level: Level = 'normal';
  private peak = 0;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private failing = false;

  constructor(private readonly options: NotificationQueueWatchOptions) {}

  private get warnAt(): number {
    return this.options.warnAt ?? this.options.silentAt / 2;
  }

  /** Reads the usage now and then every `intervalMs`. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.poll(), this.options.intervalMs ?? 5_000);
    this.timer.unref();
    void this.poll();
  }

  /** One reading (exposed for tests); readings never overlap. */
  poll(): Promise<void> {
    this.polling ??= this.read().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async read(): Promise<void> {
    let usage: number;
    try {
      const result = await this.options.pool.query<{ usage: number }>('SELECT pg_notification_queue_usage() AS usage');
      usage = Number(result.rows[0]!.usage);
    } catch (error) {
      if (!this.failing) this.options.logger.warn({ err: error }, 'could not read pg_notification_queue_usage(); trying again later');
      this.failing = true;
      return;
    }
    this.failing = false;
    this.options.events.emit('notificationQueueUsage', { usage });
    this.observe(usage);
  }

  /** Moves between the levels on one reading, logging each change once. */
  observe(usage: number): void {
    const { logger, silentAt } = this.options;
    if (usage >= silentAt) {
      this.peak = Math.max(this.peak, usage);
      if (this.level === 'silent') return;
      this.level = 'silent';
      logger.error(
        { usage, silentAt },
        'the notification queue is so full that the triggers have fallen silent: changes are missed until it drains, then every table is reloaded',
      );
      return;
    }
    if (this.level === 'silent') {
      logger.warn({ usage, peakUsage: this.peak, silentAt }, 'the triggers send again; reloading every table for the changes they dropped');
      this.options.onTriggersResumed(this.peak);
      this.peak = 0;
      this.level = 'filling';
    }
    if (usage >= this.warnAt) {
      if (this.level === 'normal') {
        logger.warn(
          { usage, warnAt: this.warnAt, silentAt },
          'the notification queue is filling up: some LISTENing session is not reading its notifications (see pg_stat_activity for an idle-in-transaction listener)',
        );
      }
      this.level = 'filling';
      return;
    }
    if (this.level !== 'normal') logger.info({ usage }, 'the notification queue has drained');
    this.level = 'normal';
  }

  /** Stops reading; waits for a reading in flight. */
  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }
}
