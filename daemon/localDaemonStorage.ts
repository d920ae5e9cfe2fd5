import { LocalStorageTable } from '../lib/local/localStorageTable.ts';
import type { RecordScorer } from '../lib/core/storageTable.ts';
import type { DaemonStorage, Row, TableWriter, TableWriterOptions } from './daemonStorage.ts';

/**
 * The daemon's tables in its own memory ({@link LocalStorageTable}), for
 * readers in the same process: the same pipeline as with Redis, without a
 * Redis. Each (re)load fills a new table that replaces the live one when it
 * is complete, so readers never see a half-loaded table; refreshes merge
 * into the live one atomically. No lease: nothing outside the process writes.
 *
 * @example
 * ```ts
 * const storage = new LocalDaemonStorage();
 * const daemon = await TablecacheDaemon.start(config, { storage });
 * const users = storage.table('users'); // the live LocalStorageTable, once loaded
 * ```
 */
export class LocalDaemonStorage implements DaemonStorage {
  readonly description = 'in-process memory';
  private readonly live = new Map<string, LocalStorageTable<Row>>();

  async connect(): Promise<void> {}

  async openWriter(options: TableWriterOptions): Promise<TableWriter> {
    return new LocalTableWriter(options.table, options.scorer, this.live);
  }

  /** The table as readers see it now (replaced by every reload), or `undefined` before its first load. */
  table(name: string): LocalStorageTable<Row> | undefined {
    return this.live.get(name);
  }

  async close(): Promise<void> {}
}

class LocalTableWriter implements TableWriter {
  readonly writerId = `local:${process.pid}`;
  private loading: LocalStorageTable<Row> | null = null;

  constructor(
    private readonly name: string,
    private readonly scorer: RecordScorer<Row>,
    private readonly live: Map<string, LocalStorageTable<Row>>,
  ) {}

  storageForLoad(): LocalStorageTable<Row> {
    this.loading = new LocalStorageTable(this.scorer, { tableName: this.name });
    return this.loading;
  }

  async published(): Promise<void> {
    if (this.loading !== null) this.live.set(this.name, this.loading);
    this.loading = null;
  }

  async intact(): Promise<boolean> {
    return true;
  }

  async writable(): Promise<boolean> {
    return true;
  }

  async recordCount(): Promise<number | null> {
    return this.live.get(this.name)?.size ?? null;
  }

  /** The process's memory does not outlive it: there is nothing to resume. */
  async savedPosition(): Promise<string | null> {
    return null;
  }

  async savePosition(): Promise<void> {}

  /** No lease: nothing else writes the process's memory. */
  async giveUp(): Promise<void> {}

  async close(): Promise<void> {}
}
