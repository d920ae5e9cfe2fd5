import type { CutProof } from './stepSnapshot.ts';
import type { TablecacheError } from '../lib/core/errors.ts';

/**
 * The typed events a running daemon emits: the one place where logging,
 * metrics and health checks observe it.
 */

/**
 * Why a table is (re)loaded, as a small fixed set: the `reason` label of
 * `tablecache_reloads_total` (the free-text reasons carry the details).
 */
export type ReloadKind =
  /** The daemon started. */
  | 'start'
  /** A source table was truncated. */
  | 'truncate'
  /** A source table changed in bulk (coarse payload: too many keys, or the trigger met an error). */
  | 'bulk_change'
  /** A payload of a format version this daemon does not read. */
  | 'unknown_payload_version'
  /** A changed key could not be mapped to cached records. */
  | 'unmappable_key'
  /** LISTEN was down: notifications sent meanwhile are gone. */
  | 'listen_lost'
  /** The notification queue was so full that the triggers fell silent. */
  | 'queue_full'
  /** Redis no longer holds the published data (flush, restart, older snapshot). */
  | 'storage_lost'
  /** The writer lease was lost. */
  | 'lease_lost'
  /** A Redis Cluster master or the Sentinel primary was replaced by a replica, which may lack the last acknowledged writes. */
  | 'redis_failover'
  /** The daemon fell so far behind that its queue was replaced by a reload. */
  | 'fell_behind'
  /** A change came from a session that had exited before its role could be checked (`daemon.verifySenders`). */
  | 'unverified_sender'
  /** More changed keys were queued for the table than `daemon.maxQueuedKeysPerTable`: they were replaced by a reload. */
  | 'key_flood'
  /** A refresh or reload failed (Postgres or Redis down); this is the retry. A retried reload keeps its own kinds too. */
  | 'failure'
  /** A source table's columns, identity (DROP + CREATE) or partitions changed. */
  | 'schema_change'
  /** A source table's triggers are back after they were missing or disabled: changes made meanwhile were not captured. */
  | 'capture_restored'
  /** Logical capture: the replication slot was missing or invalidated and was created anew; what it held back is gone. */
  | 'slot_recreated';

/** What one applied batch did to one table. */
export interface TableBatchResult {
  readonly table: string;
  /** `refresh`: the named records were refreshed; `reload`: the whole table was reloaded. */
  readonly action: 'refresh' | 'reload';
  /** Distinct keys refreshed (0 for a reload). */
  readonly keys: number;
  /** Of those, the keys whose records were read while the step's cut was being proven, not after it. */
  readonly readAheadKeys: number;
  readonly expired: number;
  readonly loaded: number;
}

/** Payload of the `batchApplied` event. */
export interface BatchAppliedEvent {
  /** Notifications folded into the batch. */
  readonly notifications: number;
  /** Keys those notifications carried, before deduplication. */
  readonly receivedKeys: number;
  readonly tables: readonly TableBatchResult[];
  /** Barriers marked done after this batch. */
  readonly barriers: number;
  /** From the batch's first notification to the end of its last merge. */
  readonly ms: number;
  /**
   * Of `ms`, opening the step's snapshot and waiting for its tick to come
   * back (the cost of the snapshot-consistent cut: about one NOTIFY round trip).
   */
  readonly tickMs: number;
  /**
   * Ticks the cut sent: 1, or 2 when the first raced the snapshot; with the
   * logical capture, 0 when the stream had passed the snapshot already.
   */
  readonly ticks: number;
  /** What proved the cut: the step's own `tick`, or a writer's `commit` after its snapshot (which came first). */
  readonly cutProvenBy: CutProof;
  /**
   * The earliest of {@link changeTimes}, or `null` when there is none:
   * `Date.now() - oldestChangeAt` at this event is the step's worst
   * change-to-visible delay.
   */
  readonly oldestChangeAt: number | null;
  /**
   * The trigger time (`ts`, epoch ms, Postgres' clock) of every change this
   * step made visible: with `Date.now()` at this event, each change's delay
   * from its statement to being visible. A step that failed, or that held
   * its table for a deferred reload, made none visible: its changes are
   * reported with the later step that does (a reload).
   */
  readonly changeTimes: readonly number[];
}

/** Payload of the `loadStarted` event. */
export interface LoadStartedEvent {
  readonly table: string;
  /** The planner's row estimate for the table's query (`EXPLAIN`), or `null` when it could not be had. */
  readonly estimatedRows: number | null;
  readonly reasons: readonly string[];
}

/** Payload of the `loadProgress` event, emitted a few times a second while a (re)load streams rows. */
export interface LoadProgressEvent {
  readonly table: string;
  /** Rows read from Postgres so far. */
  readonly rows: number;
  readonly estimatedRows: number | null;
  /** Since the load started. */
  readonly elapsedMs: number;
}

/** Payload of the `loaded` and `reloaded` events. */
export interface TableLoadedEvent {
  readonly table: string;
  readonly records: number;
  readonly ms: number;
  /** Why it was (re)loaded: `start`, a TRUNCATE, a coarse change, a resync, a lost Redis, a failed refresh… */
  readonly reasons: readonly string[];
  /** The same reasons as a fixed set, for metrics. */
  readonly kinds: readonly ReloadKind[];
}

/** Payload of the `notificationReceived` event. */
export interface NotificationReceivedEvent {
  /**
   * `change` and `barrier`: understood; `malformed`: skipped; `unknownVersion`: its tables are reloaded;
   * `rejected`: sent by a role that may not write the table it names (`daemon.verifySenders`), skipped.
   */
  readonly kind: 'change' | 'barrier' | 'malformed' | 'unknownVersion' | 'rejected';
}

/** Payload of the `malformedPayload` event. */
export interface MalformedPayloadEvent {
  /** The payload's first 200 characters. */
  readonly excerpt: string;
  readonly error: string;
}

/** Payload of the `resolveReturnedNull` event. */
export interface ResolveReturnedNullEvent {
  readonly table: string;
  /** The source whose `resolve` query it was (canonical text). */
  readonly source: string;
  /** Rows whose primary key was NULL (in some column): skipped. */
  readonly rows: number;
}

/** Payload of the `listenerReconnected` event. */
export interface ListenerReconnectedEvent {
  /** How long LISTEN was down. */
  readonly downMs: number;
  readonly attempts: number;
}

/** A server the daemon talks to. */
export type DaemonDependency = 'postgres' | 'redis';

/** Payload of the `connectionLost` event. */
export interface ConnectionLostEvent {
  /** `postgres`: the LISTEN connection; `redis`: the writer's connection. */
  readonly source: DaemonDependency;
  /** Reconnect attempt, from 1. */
  readonly attempt: number;
  /** What is down, for `/readyz` (e.g. which Redis Cluster master does not answer); absent: the connection itself. */
  readonly detail?: string;
}

/** Payload of the `connectionRestored` event. */
export interface ConnectionRestoredEvent {
  readonly source: DaemonDependency;
  /**
   * Set when the connection came back to another server than it lost (a
   * replica promoted by Redis Cluster or Sentinel): writes acknowledged just
   * before the failover may be missing there (replication is asynchronous),
   * so every table is reloaded (`redis_failover`). Says what happened.
   */
  readonly failover?: string;
}

/** Payload of the `waiting` event: the start is held up, and by what. */
export interface WaitingEvent {
  /** `redis`/`postgres`: not reachable yet; `lease`: another daemon writes a table (standby). */
  readonly for: DaemonDependency | 'lease';
  /** For operators, e.g. `Redis at redis://cache:6379 (connect ECONNREFUSED; attempt 3)`; never a password. */
  readonly detail: string;
}

/** Payload of the `notificationQueueUsage` event. */
export interface NotificationQueueUsageEvent {
  /** `pg_notification_queue_usage()`: the fraction of Postgres' notification queue in use, 0 to 1. */
  readonly usage: number;
}

/** Payload of the `error` event: a failure the daemon recovers from by itself (it retries or reloads). */
export interface DaemonErrorEvent {
  readonly error: unknown;
  /** What was being done, e.g. `reloading table users`. */
  readonly during: string;
  readonly table?: string;
  /** Which server the failure came from, when known. */
  readonly source: DaemonDependency | null;
}

/** Payload of the `fatal` event. */
export interface DaemonFatalEvent {
  /**
   * Why the daemon cannot go on, with the code the CLI exits with: e.g.
   * `TC_CAPTURE_SETUP` (exit 5) when the replication slot is gone and
   * cannot be created again (no free slot, a role without REPLICATION).
   */
  readonly error: TablecacheError;
}

/** A source table whose changes the daemon cannot see (found by the capture check). */
export interface CaptureProblem {
  /** Canonical source table name (`public.users`). */
  readonly source: string;
  /** The cached tables that read it. */
  readonly tables: readonly string[];
  /** What is wrong and the command that fixes it, for operators. */
  readonly message: string;
}

/** Payload of the `captureChecked` event. */
export interface CaptureCheckedEvent {
  /** Every source table whose changes are not captured now (empty when all are). */
  readonly problems: readonly CaptureProblem[];
}

/** Payload of the `sourceSchemaChanged` event. */
export interface SourceSchemaChangedEvent {
  readonly source: string;
  /** The cached tables that read it (each is reloaded). */
  readonly tables: readonly string[];
  /** What changed, for people. */
  readonly detail: string;
}

/** The events of a {@link TablecacheDaemon}. */
export interface DaemonEvents {
  /** A table's load began: the first, or a reload. */
  loadStarted: [LoadStartedEvent];
  /** A load is streaming rows (a few times a second). */
  loadProgress: [LoadProgressEvent];
  /** A table's first load after start finished: readers see it. */
  loaded: [TableLoadedEvent];
  /** A table was reloaded after it was loaded once. */
  reloaded: [TableLoadedEvent];
  batchApplied: [BatchAppliedEvent];
  /** A notification arrived on the channel (before it is applied). */
  notificationReceived: [NotificationReceivedEvent];
  /** A notification on the channel was not a payload the daemon understands; it was skipped. */
  malformedPayload: [MalformedPayloadEvent];
  /** A `resolve` query returned rows with a NULL primary key; they were skipped (and logged). */
  resolveReturnedNull: [ResolveReturnedNullEvent];
  /** LISTEN is active again after a connection loss; every table is reloaded. */
  listenerReconnected: [ListenerReconnectedEvent];
  /** A connection the daemon keeps open was lost; it reconnects by itself. */
  connectionLost: [ConnectionLostEvent];
  /** That connection is back. */
  connectionRestored: [ConnectionRestoredEvent];
  /** The start waits (Postgres or Redis unreachable, or as a standby); repeated on every retry. */
  waiting: [WaitingEvent];
  /** The start is done: every lease held and LISTEN active (the loads go on). */
  started: [];
  /** A reading of `pg_notification_queue_usage()`. */
  notificationQueueUsage: [NotificationQueueUsageEvent];
  /** The capture check ran: which source tables' changes do not reach the daemon. */
  captureChecked: [CaptureCheckedEvent];
  /** A source table changed shape (columns, identity, partitions); the tables reading it are reloaded. */
  sourceSchemaChanged: [SourceSchemaChangedEvent];
  /** Emitted only while someone listens (an unheard `error` event would crash the process); always logged. */
  error: [DaemonErrorEvent];
  /** A failure retrying cannot heal while the daemon runs; it stops itself (releasing its leases) right after. */
  fatal: [DaemonFatalEvent];
}
