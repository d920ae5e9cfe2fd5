/**
 * tablecache/daemon: `startDaemon` runs the daemon inside your process from a
 * configuration object; the rest are its parts. The daemon LISTENs for the
 * change triggers' notifications, maps each change to the cached records it
 * affects, and keeps every configured table in Redis
 * (or in process) equal to its query in Postgres; its health endpoint,
 * Prometheus metrics and logging; plus `verifyCache`, the comparison behind
 * `tablecache verify`.
 *
 * @packageDocumentation
 */
export { startDaemon, type DaemonListeners, type RunningDaemon, type StartDaemonOptions } from './startDaemon.ts';
export { tableIndexes } from './config/tableIndexes.ts';
export { TablecacheDaemon, type DaemonOptions } from './tablecacheDaemon.ts';
export type { DaemonPhase, DaemonReadiness } from './daemonReadiness.ts';
export type {
  BatchAppliedEvent,
  ConnectionLostEvent,
  ConnectionRestoredEvent,
  DaemonDependency,
  DaemonErrorEvent,
  DaemonEvents,
  ListenerReconnectedEvent,
  LoadProgressEvent,
  LoadStartedEvent,
  MalformedPayloadEvent,
  NotificationQueueUsageEvent,
  NotificationReceivedEvent,
  ReloadKind,
  TableBatchResult,
  TableLoadedEvent,
  WaitingEvent,
} from './daemonEvents.ts';
export type { DaemonStorage, Row, StorageConnectOptions, TableWriter, TableWriterOptions } from './daemonStorage.ts';
export { RedisDaemonStorage, DEFAULT_LEASE_TTL_MS, type RedisDaemonStorageOptions } from './redisDaemonStorage.ts';
export { LocalDaemonStorage } from './localDaemonStorage.ts';
export { DaemonMetrics, type DaemonMetricsOptions, type MetricsSource } from './http/daemonMetrics.ts';
export { HealthServer, type HealthServerOptions } from './http/healthServer.ts';
export { createDaemonLogger, type DaemonLogOutput, type DaemonLoggerOptions } from './daemonLogger.ts';
export { formatLoadProgress, loadProgressFigures, reportLoadProgress, type LoadProgressFigures, type LoadProgressReportOptions } from './loadProgressReport.ts';
export { TerminalStatusLine } from './terminalStatusLine.ts';
export { NotificationQueueWatch, type NotificationQueueWatchOptions } from './notificationQueueWatch.ts';
export { errorSource } from './errorSource.ts';
export { estimateRows } from './rowEstimate.ts';
export { verifyCache, type RecordDifference, type TableVerification, type VerifyOptions } from './verifyCache.ts';
export { ChangeMapper, type MapOutcome, type MappedTable } from './changeMapper.ts';
export { ChangeBatch, TableChanges } from './changeBatch.ts';
export { ChangePipeline, type ChangePipelineOptions, type SyncedTable } from './changePipeline.ts';
export { TableStepLoop, type TableStepLoopOptions } from './tableStepLoop.ts';
export { BarrierTracker, type BarrierTrackerOptions } from './barrierTracker.ts';
export { ChangeQueue, type StepStart } from './changeQueue.ts';
export { parsePgSnapshot, visibleInSnapshot, type PgSnapshot } from './pgSnapshot.ts';
export {
  PostgresStepSnapshots,
  type CutProof,
  type NotificationSender,
  type PostgresStepSnapshotsOptions,
  type StepSnapshot,
  type StepSnapshotSource,
} from './stepSnapshot.ts';
export { ChangeListener, type ChangeListenerEvents, type ChangeListenerOptions } from './changeListener.ts';
export { classifyNotification, payloadExcerpt, PAYLOAD_EXCERPT_LENGTH, type Notification } from './notificationText.ts';
export { TableSync, type TableRefreshCounts, type TableSyncOptions } from './tableSync.ts';
export { RefreshDbAccess } from './refreshDbAccess.ts';
export { connectRedis, connectRedisWhenReachable, describeRedis, redisOptions, type RedisConnection, type RedisPurpose, type RedisWaitOptions } from './redisConnection.ts';
