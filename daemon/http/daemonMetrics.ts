import type { EventEmitter } from 'node:events';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DaemonEvents, NotificationReceivedEvent } from '../daemonEvents.ts';
import type { DaemonReadiness } from '../daemonReadiness.ts';

/** What {@link DaemonMetrics} observes: a {@link TablecacheDaemon}. */
export interface MetricsSource extends EventEmitter<DaemonEvents> {
  readiness(): DaemonReadiness;
  recordCounts(): Promise<ReadonlyMap<string, number | null>>;
  /** Distinct changed keys queued and not applied yet, per table. */
  queuedKeys?(): ReadonlyMap<string, number>;
  /** Per table, the age (ms) of the oldest change received and not visible yet (0: none). */
  oldestPendingChangeAges?(): ReadonlyMap<string, number>;
  /** The replication slot's numbers (logical capture), or `null` (triggers, or not known now). */
  captureSlotStatus?(): Promise<CaptureSlotMetrics | null>;
}

/**
 * The logical capture slot's numbers the daemon exports as `tablecache_capture_*`
 * gauges, read while it streams (`tablecache capture status` reports the
 * slot in full: `LogicalCaptureSlotStatus`).
 */
export interface CaptureSlotMetrics {
  /** WAL written since the slot's confirmed position (what a restart would replay), in bytes. */
  readonly lagBytes: number;
  /** WAL the slot keeps on disk (since its restart position), in bytes. */
  readonly retainedWalBytes: number;
  /** Seconds since the last message (data or keepalive) from the stream; `null` before the first. */
  readonly secondsSinceLastMessage: number | null;
}

/** Options of {@link DaemonMetrics}. */
export interface DaemonMetricsOptions {
  /** Also export Node.js process metrics (`process_*`, `nodejs_*`; default true). */
  readonly processMetrics?: boolean;
}

/** Upper bounds of the lag histogram, in seconds: from a millisecond (loopback) to a minute (a reload of a large table). */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LOAD_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800];

const NOTIFICATION_KINDS: Record<NotificationReceivedEvent['kind'], string> = {
  change: 'change',
  barrier: 'barrier',
  malformed: 'malformed',
  unknownVersion: 'unknown_version',
  rejected: 'rejected',
};

/**
 * The daemon's Prometheus metrics, in a registry of their own (never the
 * process-wide default one, so that an application embedding the daemon
 * keeps its own), fed by the daemon's events. Labels are `table`, `reason`,
 * `kind` and `source`, each from a small fixed set or the configured table
 * names: never a URL, a key or a payload.
 *
 * docs/operations.md lists every metric.
 *
 * @example
 * ```ts
 * const metrics = new DaemonMetrics(daemon);
 * response.setHeader('Content-Type', metrics.contentType);
 * response.end(await metrics.metrics());
 * ```
 */
export class DaemonMetrics {
  /** The registry holding every metric below. */
  readonly registry = new Registry();
  private readonly detach: (() => void)[] = [];

  constructor(source: MetricsSource, options: DaemonMetricsOptions = {}) {
    const registers = [this.registry];
    const notifications = new Counter({
      name: 'tablecache_notifications_received_total',
      help: 'Notifications received on the trigger channel, by kind: change, barrier, malformed (skipped), unknown_version (its tables reloaded), rejected (a sender that may not write the table, skipped; daemon.verifySenders).',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of Object.values(NOTIFICATION_KINDS)) notifications.inc({ kind }, 0);
    const batches = new Counter({ name: 'tablecache_batches_total', help: 'Batches of notifications applied (refreshes and reloads).', registers });
    const batchSeconds = new Histogram({
      name: 'tablecache_batch_duration_seconds',
      help: "From a batch's first notification to the end of its last merge.",
      buckets: BATCH_BUCKETS,
      registers,
    });
    const refreshedKeys = new Counter({
      name: 'tablecache_refreshed_keys_total',
      help: 'Distinct keys refreshed, per table (a key changed five times in one batch counts once).',
      labelNames: ['table'],
      registers,
    });
    const refreshedRecords = new Counter({
      name: 'tablecache_records_refreshed_total',
      help: 'Records written by refreshes, per table.',
      labelNames: ['table'],
      registers,
    });
    const reloads = new Counter({
      name: 'tablecache_reloads_total',
      help: 'Loads of a whole table, per table and reason (start, truncate, bulk_change, listen_lost, queue_full, storage_lost, lease_lost, redis_failover, fell_behind, key_flood, failure, unknown_payload_version, unmappable_key, unverified_sender, schema_change, capture_restored, slot_recreated). A load with two reasons counts under both; a reload retried after it failed counts under its own reason and failure.',
      labelNames: ['table', 'reason'],
      registers,
    });
    const resolveNulls = new Counter({
      name: 'tablecache_resolve_null_keys_total',
      help: "Rows a source's resolve query returned with a NULL primary key, per table: they name no record and were skipped (each batch with some is logged).",
      labelNames: ['table'],
      registers,
    });
    const lag = new Histogram({
      name: 'tablecache_invalidation_lag_seconds',
      help: "Per change: from its trigger (the payload's clock_timestamp(), Postgres' clock) to visible to readers. Includes the rest of the writing transaction and any clock skew between the hosts.",
      buckets: LAG_BUCKETS,
      registers,
    });
    const loadSeconds = new Histogram({
      name: 'tablecache_load_duration_seconds',
      help: 'Duration of whole-table loads, per table.',
      labelNames: ['table'],
      buckets: LOAD_BUCKETS,
      registers,
    });
    const loadRows = new Gauge({ name: 'tablecache_load_rows', help: 'Records of the last whole-table load, per table.', labelNames: ['table'], registers });
    const errors = new Counter({
      name: 'tablecache_errors_total',
      help: 'Failed refreshes, loads and checks the daemon recovers from by retrying or reloading, by source: postgres, redis, other.',
      labelNames: ['source'],
      registers,
    });
    const reconnects = new Counter({
      name: 'tablecache_reconnects_total',
      help: 'Connections lost and being re-established, by source: postgres (the LISTEN connection), redis.',
      labelNames: ['source'],
      registers,
    });
    for (const sourceName of ['postgres', 'redis']) {
      errors.inc({ source: sourceName }, 0);
      reconnects.inc({ source: sourceName }, 0);
    }
    const queueUsage = new Gauge({
      name: 'tablecache_notification_queue_usage',
      help: "Postgres' pg_notification_queue_usage(): the fraction of the cluster-wide notification queue in use. The triggers fall silent at triggers.maxQueueUsage.",
      registers,
    });
    const captureProblems = new Gauge({
      name: 'tablecache_capture_problems',
      help: 'Source tables whose changes the daemon does not see (triggers missing or disabled on the table or a partition or child, the table gone), as of the last capture check. /readyz names them and the fix.',
      registers,
    });
    const schemaChanges = new Counter({
      name: 'tablecache_schema_changes_total',
      help: 'Source-table changes of shape (columns and types, DROP and CREATE, partitions attached or detached) seen by the capture check, per cached table reading the source; each reloads the table.',
      labelNames: ['table'],
      registers,
    });
    new Gauge({
      name: 'tablecache_records',
      help: 'Records readers see, per table (read from the storage at scrape time; absent while a table is not loaded or the storage does not answer).',
      labelNames: ['table'],
      registers,
      async collect() {
        this.reset();
        for (const [table, count] of await source.recordCounts()) if (count !== null) this.set({ table }, count);
      },
    });
    if (source.queuedKeys !== undefined) {
      const queuedKeys = source.queuedKeys.bind(source);
      new Gauge({
        name: 'tablecache_queued_keys',
        help: 'Distinct changed keys waiting to be refreshed, per table (read at scrape time). Bounded by daemon.maxQueuedKeysPerTable: past it they become one reload (reason key_flood).',
        labelNames: ['table'],
        registers,
        collect() {
          this.reset();
          for (const [table, count] of queuedKeys()) this.set({ table }, count);
        },
      });
    }
    if (source.oldestPendingChangeAges !== undefined) {
      const ages = source.oldestPendingChangeAges.bind(source);
      new Gauge({
        name: 'tablecache_oldest_pending_change_seconds',
        help: 'Per table, how long ago the daemon received the oldest change it has not made visible to readers yet (0 when none waits; read at scrape time). daemon.maxLagMs bounds it for /readyz.',
        labelNames: ['table'],
        registers,
        collect() {
          this.reset();
          for (const [table, ms] of ages()) this.set({ table }, ms / 1000);
        },
      });
    }
    if (source.captureSlotStatus !== undefined) {
      // One read of the slot per scrape, shared by its three gauges.
      const slotStatus = source.captureSlotStatus.bind(source);
      let reading: Promise<CaptureSlotMetrics | null> | null = null;
      const read = (): Promise<CaptureSlotMetrics | null> => {
        reading ??= slotStatus()
          .catch(() => null)
          .finally(() => setImmediate(() => (reading = null)));
        return reading;
      };
      const slotGauge = (name: string, help: string, value: (status: CaptureSlotMetrics) => number | null) =>
        new Gauge({
          name,
          help,
          registers,
          async collect() {
            this.reset();
            const status = await read();
            const current = status === null ? null : value(status);
            if (current !== null) this.set(current);
          },
        });
      slotGauge('tablecache_capture_slot_lag_bytes', 'Logical capture: WAL written since the slot\'s confirmed position, in bytes (what a restarted daemon replays; absent when unknown).', (status) => status.lagBytes);
      slotGauge('tablecache_capture_slot_retained_wal_bytes', 'Logical capture: WAL the slot keeps on disk (since its restart position), in bytes.', (status) => status.retainedWalBytes);
      slotGauge(
        'tablecache_capture_seconds_since_last_message',
        'Logical capture: seconds since the last message (data or keepalive) from the replication stream; the WAL sender sends a keepalive after half of wal_sender_timeout.',
        (status) => status.secondsSinceLastMessage,
      );
    }
    new Gauge({
      name: 'tablecache_ready',
      help: '1 when every table is loaded and LISTEN is connected (what /readyz says), else 0.',
      registers,
      collect() {
        this.set(source.readiness().ready ? 1 : 0);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.listen(source, 'notificationReceived', ({ kind }) => notifications.inc({ kind: NOTIFICATION_KINDS[kind] }));
    this.listen(source, 'batchApplied', (event) => {
      batches.inc();
      batchSeconds.observe(event.ms / 1000);
      for (const result of event.tables) {
        if (result.action !== 'refresh') continue;
        refreshedKeys.inc({ table: result.table }, result.keys);
        refreshedRecords.inc({ table: result.table }, result.loaded);
      }
      const now = Date.now();
      for (const time of event.changeTimes) lag.observe(Math.max(0, now - time) / 1000);
    });
    const onLoaded = ({ table, records, ms, kinds }: DaemonEvents['loaded'][0]) => {
      for (const reason of kinds) reloads.inc({ table, reason });
      loadSeconds.observe({ table }, ms / 1000);
      loadRows.set({ table }, records);
    };
    this.listen(source, 'loaded', onLoaded);
    this.listen(source, 'reloaded', onLoaded);
    this.listen(source, 'resolveReturnedNull', ({ table, rows }) => resolveNulls.inc({ table }, rows));
    this.listen(source, 'error', ({ source: from }) => errors.inc({ source: from ?? 'other' }));
    this.listen(source, 'connectionLost', ({ source: from }) => reconnects.inc({ source: from }));
    this.listen(source, 'notificationQueueUsage', ({ usage }) => queueUsage.set(usage));
    this.listen(source, 'captureChecked', ({ problems }) => captureProblems.set(problems.length));
    this.listen(source, 'sourceSchemaChanged', ({ tables }) => {
      for (const table of tables) schemaChanges.inc({ table });
    });
  }

  /** The `Content-Type` of {@link metrics}: Prometheus' text format. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in Prometheus' text exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops observing the daemon. */
  close(): void {
    for (const detach of this.detach.splice(0)) detach();
  }

  private listen<K extends keyof DaemonEvents>(source: MetricsSource, event: K, handler: (...args: DaemonEvents[K]) => void): void {
    const listener = handler as never;
    (source as EventEmitter).on(event, listener);
    this.detach.push(() => (source as EventEmitter).off(event, listener));
  }
}
