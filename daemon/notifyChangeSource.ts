import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../lib/core/logger.ts';
import { ChangeListener } from './changeListener.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { ChangePipeline } from './changePipeline.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { redactUrl } from './config/redactUrl.ts';
import type { DaemonEvents } from './daemonEvents.ts';
import { NotificationQueueWatch } from './notificationQueueWatch.ts';
import { createSenderGate } from './senderCheck.ts';
import type { StepSnapshotSource } from './stepSnapshot.ts';

/** Options of a {@link NotifyChangeSource}. */
export interface NotifyChangeSourceOptions {
  readonly config: TablecacheConfig;
  readonly pool: pg.Pool;
  readonly mapper: ChangeMapper;
  readonly snapshots: StepSnapshotSource;
  readonly tables: readonly string[];
  /** Whether Postgres is known to be down (a reconnect counts as one outage, not one per attempt). */
  readonly postgresDown: () => boolean;
  readonly events: EventEmitter<DaemonEvents>;
  readonly logger: Logger;
  /** How often an idle LISTEN connection is checked (default 10,000 ms). */
  readonly listenerCheckMs?: number | undefined;
  /** How often `pg_notification_queue_usage()` is read (default 5,000 ms). */
  readonly queueCheckIntervalMs?: number | undefined;
}

/**
 * The trigger change source (`capture.method: triggers`, the default): LISTEN
 * on the triggers' channel ({@link ChangeListener}), optionally checking each
 * sender's role first, and the watch of the notification queue. A lost
 * LISTEN connection loses the notifications sent meanwhile, so once it is
 * back every table is reloaded; so is every table after the triggers fell
 * silent at a full queue.
 */
export class NotifyChangeSource {
  private listener: ChangeListener | null = null;
  private queueWatch: NotificationQueueWatch | null = null;

  constructor(private readonly options: NotifyChangeSourceOptions) {}

  /** LISTENs (waiting for Postgres as long as it is down) and delivers into `pipeline`. */
  async start(pipeline: ChangePipeline, signal?: AbortSignal): Promise<void> {
    const { config, events, logger, snapshots } = this.options;
    const postgres = `Postgres at ${redactUrl(config.postgres.listenUrl)}`;
    const listener = await ChangeListener.start(
      {
        connectionString: config.postgres.listenUrl,
        channel: config.triggers.channel,
        logger,
        ...(this.options.listenerCheckMs === undefined ? {} : { paranoidCheckMs: this.options.listenerCheckMs }),
        onRetry: (attempt, cause) => events.emit('waiting', { for: 'postgres', detail: `${postgres} to LISTEN (${cause}; attempt ${attempt})` }),
      },
      signal,
    );
    this.listener = listener;
    const gate = config.daemon.verifySenders
      ? createSenderGate({
          pool: this.options.pool,
          mapper: this.options.mapper,
          pipeline,
          tables: this.options.tables,
          logger,
          onRejected: () => events.emit('notificationReceived', { kind: 'rejected' }),
        })
      : null;
    listener.on('notification', (text, processId) => (gate === null ? pipeline.push(text, { processId, verified: false }) : gate.push(text, processId)));
    listener.on('reconnecting', (attempt) => {
      snapshots.listenerReset('lost');
      if (attempt <= 1 || !this.options.postgresDown()) events.emit('connectionLost', { source: 'postgres', attempt });
    });
    listener.on('reconnected', (downMs, attempts) => {
      // A tick sent while LISTEN was down never comes: the waiting step gives up and is retried.
      snapshots.listenerReset('restored');
      events.emit('connectionRestored', { source: 'postgres' });
      events.emit('listenerReconnected', { downMs, attempts });
      pipeline.requestReload(null, `resync: LISTEN was down for ${Math.round(downMs)} ms`, 'listen_lost');
    });
    this.queueWatch = new NotificationQueueWatch({
      pool: this.options.pool,
      silentAt: config.triggers.maxQueueUsage,
      logger,
      events,
      ...(this.options.queueCheckIntervalMs === undefined ? {} : { intervalMs: this.options.queueCheckIntervalMs }),
      onTriggersResumed: (peak) =>
        pipeline.requestReload(null, `the triggers fell silent: the notification queue reached ${(peak * 100).toFixed(1)}% usage`, 'queue_full'),
    });
    this.queueWatch.start();
  }

  /** Stops the queue watch and LISTEN. */
  async close(): Promise<void> {
    await this.queueWatch?.close();
    await this.listener?.close();
  }
}
