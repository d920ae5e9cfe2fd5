import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/core/logger.ts';
import type { RecordScorer, StorageTable } from '../lib/core/storageTable.ts';
import type { DaemonEvents } from './daemonEvents.ts';

/** A cached record as the daemon handles it: a row of the table's query. */
export type Row = Record<string, unknown>;

/** Options of {@link DaemonStorage.openWriter}. */
export interface TableWriterOptions {
  readonly table: string;
  /** The table's hash tag (`tables.<name>.hashTag`): where its keys live in Redis. */
  readonly hashTag?: string | undefined;
  /** Primary keys and index scores of records (the table's Indexes). */
  readonly scorer: RecordScorer<Row>;
  /** Wait for another daemon's lease on the table instead of failing. */
  readonly standby: boolean;
  /** Aborts a standby wait. */
  readonly signal?: AbortSignal;
  readonly logger: Logger;
  /** Called once when the writer finds that its lease was lost. */
  readonly onLost: (error: Error) => void;
}

/** One cached table's writer in a {@link DaemonStorage}. */
export interface TableWriter {
  /** Identifies the writer (in Redis: the lease holder shown to readers and standbys). */
  readonly writerId: string;
  /**
   * The storage the next (re)load writes into. What readers see stays as it
   * is until that load is published (`markLoaded`), then {@link published}
   * is called; refreshes go to the storage the last load wrote into.
   */
  storageForLoad(): StorageTable<Row>;
  /** A load into {@link storageForLoad}'s storage was published: readers now see it. */
  published(): Promise<void>;
  /** Whether the storage still holds what was last published, under this writer. */
  intact(): Promise<boolean>;
  /** Whether this writer may still write (its lease is still its own). */
  writable(): Promise<boolean>;
  /** How many records readers see, or `null` when it cannot be told now. */
  recordCount(): Promise<number | null>;
  /**
   * The change source's position saved with the live generation
   * ({@link savePosition}), when this writer continues that generation as it
   * found it at open; `null` otherwise (nothing saved, another generation
   * published since, data written with other indexes): the table is then
   * loaded, not resumed.
   */
  savedPosition(): Promise<string | null>;
  /**
   * Saves the change source's position with the live generation: every
   * change before it is in the published data. Written only while this
   * writer holds the table.
   */
  savePosition(position: string): Promise<void>;
  /**
   * Gives the lease up now (in Redis) and refuses every later write; safe
   * while a step of this writer is in flight. {@link close} still follows.
   */
  giveUp(): Promise<void>;
  /** Gives the table up (the lease, in Redis); the published data stays for readers. */
  close(): Promise<void>;
}

/** What a {@link DaemonStorage} reports while connecting and running. */
export interface StorageConnectOptions {
  readonly logger: Logger;
  /** Receives `waiting`, `connectionLost` and `connectionRestored`. */
  readonly events: EventEmitter<DaemonEvents>;
  /** Aborts waiting for the storage to become reachable. */
  readonly signal?: AbortSignal;
}

/**
 * Where the daemon keeps its cached tables: Redis ({@link RedisDaemonStorage},
 * the default, shared with readers in other processes) or the daemon's own
 * memory ({@link LocalDaemonStorage}, for readers in the same process). The
 * pipeline is the same for both.
 */
export interface DaemonStorage {
  /** For logs and readiness reasons, never with a password: `Redis at redis://cache:6379`, `in-process memory`. */
  readonly description: string;
  /**
   * Where barrier marks are written for readers that wait on them
   * (`waitForBarrier`); absent when no reader can wait on them.
   */
  readonly barrierMarks?: Pick<Redis, 'pipeline'>;
  /** Connects, waiting (with backoff) until the storage answers or the signal aborts. */
  connect(options: StorageConnectOptions): Promise<void>;
  /**
   * Opens a table's writer, taking its lease (waiting for it with `standby`).
   *
   * @throws `LeaseHeldError` (`TC_LEASE_HELD`) when another daemon writes the table and `standby` is off.
   */
  openWriter(options: TableWriterOptions): Promise<TableWriter>;
  /** Closes the connection (after every writer was closed). */
  close(): Promise<void>;
}
