import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { CachedTable } from '../lib/core/cachedTable.ts';
import type { DbAccess } from '../lib/core/dbAccess.ts';
import { NotLoadedError, TablecacheError } from '../lib/core/errors.ts';
import { canonicalKey, canonicalKeyValue, PRIMARY_KEY_INDEX, type KeyColumnIndexes, type KeyColumnSpec, type KeyColumnSpecArgs } from '../lib/core/keyColumnIndexes.ts';
import type { Logger } from '../lib/core/logger.ts';
import type { PrimaryKey } from '../lib/core/storageTable.ts';
import { exactTypeParsers } from '../lib/postgres/typeParsers.ts';
import type { TableChanges } from './changeBatch.ts';
import type { SourceConfig } from './config/configSchema.ts';
import type { DaemonEvents } from './daemonEvents.ts';
import type { DaemonStorage, Row, TableWriter } from './daemonStorage.ts';
import type { RefreshDbAccess } from './refreshDbAccess.ts';
import { RefreshReadAhead, type IndexReadAhead } from './refreshReadAhead.ts';
import { ResumedStorage } from './resumedStorage.ts';
import type { LeaseGroupMember, WriterLeaseGroup } from './writerLeaseGroup.ts';
import { estimateRows } from './rowEstimate.ts';
import type { StepSnapshot } from './stepSnapshot.ts';

/** The database of a resuming "load": it reads nothing, the records are in Redis already. */
const NO_ROWS: DbAccess = {
   
  async *getRecords() {},
};

/** How often a running load reports its progress (`loadProgress` events). */
const PROGRESS_INTERVAL_MS = 250;

/** What a refresh of one table did. */
export interface TableRefreshCounts {
  /** Distinct keys (of every index) the refresh was asked for. */
  readonly keys: number;
  /** Of those, the keys whose records were read while the step's cut was being proven ({@link TableSync.readAhead}). */
  readonly readAheadKeys: number;
  readonly expired: number;
  readonly loaded: number;
}

/** Options of {@link TableSync.open}. */
export interface TableSyncOptions {
  readonly name: string;
  /** The table's hash tag (`tables.<name>.hashTag`). */
  readonly hashTag?: string | undefined;
  readonly indexes: KeyColumnIndexes;
  readonly sources: readonly SourceConfig[];
  /** Reads the records (refresh and load queries), counting a load's rows. */
  readonly db: RefreshDbAccess;
  /** Runs `resolve` queries and the row estimate of loads. */
  readonly pool: pg.Pool;
  /** Where the table lives (Redis, or in process); shared by the daemon's tables. */
  readonly storage: DaemonStorage;
  readonly logger: Logger;
  /** Receives `loadStarted` and `loadProgress`. */
  readonly events: EventEmitter<DaemonEvents>;
  /** Wait for another daemon's lease to expire instead of failing at start. */
  readonly standby: boolean;
  /** Aborts a standby wait. */
  readonly signal?: AbortSignal;
  /** Called when the writer lease turns out to be lost (another writer, or Redis lost its keys). */
  readonly onLeaseLost: (table: string, error: Error) => void;
  /** The daemon's tables' leases, held as one: replaces a writer that lost its lease. */
  readonly leases: WriterLeaseGroup;
}

/**
 * Keeps one cached table in step with Postgres: the table's writer (in Redis,
 * a {@link RedisStorageTable} holding the lease), its {@link CachedTable},
 * and the three things the pipeline asks of it: reload everything, refresh
 * the records some keys name, and tell whether the storage still holds what
 * it published.
 *
 * Not safe for concurrent use: the pipeline calls one method at a time.
 */
export class TableSync implements LeaseGroupMember {
  private table: CachedTable<Row, PrimaryKey, KeyColumnSpec, KeyColumnSpecArgs> | null = null;
  private writer!: TableWriter;

  private constructor(private readonly options: TableSyncOptions) {}

  /**
   * Takes the table's writer lease (waiting for it with `standby`).
   *
   * @throws `LeaseHeldError` (`TC_LEASE_HELD`) when another daemon writes the table and `standby` is off.
   */
  static async open(options: TableSyncOptions): Promise<TableSync> {
    const sync = new TableSync(options);
    await sync.openWriter(options.standby);
    options.leases.add(sync);
    return sync;
  }

  private async openWriter(standby: boolean): Promise<void> {
    this.writer = await this.options.storage.openWriter({
      table: this.options.name,
      hashTag: this.options.hashTag,
      scorer: this.options.indexes,
      standby,
      ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
      logger: this.options.logger,
      onLost: (error) => this.options.onLeaseLost(this.options.name, error),
    });
  }

  get name(): string {
    return this.options.name;
  }

  /** Whether a load has succeeded and no reload has failed since. */
  get isLoaded(): boolean {
    return this.table !== null;
  }

  /** Records readers see, or `null` when the storage cannot tell now (not loaded, or unreachable). */
  async recordCount(): Promise<number | null> {
    return this.writer.recordCount();
  }

  /**
   * Loads every record into a new generation beside the live one and switches
   * readers to it in one step (a fresh {@link CachedTable} over the same
   * writer): readers see the old data until the new is complete. A writer
   * whose lease is lost is replaced first ({@link WriterLeaseGroup}: when
   * another daemon now holds the table, this daemon gives up every table and
   * waits for all of them as a standby). Reports `loadStarted` with the planner's
   * row estimate, then `loadProgress` a few times a second. The records are
   * read in `snapshot`.
   *
   * Until a load succeeds, {@link refresh} must not be called: the writer's
   * generation is then the unfinished one.
   */
  async reload(reasons: readonly string[], snapshot: StepSnapshot): Promise<{ readonly records: number; readonly ms: number }> {
    return this.inSnapshot(snapshot, () => this.load(reasons));
  }

  private async load(reasons: readonly string[]): Promise<{ readonly records: number; readonly ms: number }> {
    const started = performance.now();
    this.table = null;
    if (!(await this.writer.writable())) await this.options.leases.replace(this);
    const spec = this.options.indexes.dbRecordsSpec(this.options.indexes.createSpec(PRIMARY_KEY_INDEX, { all: true }));
    const estimatedRows = await estimateRows(this.options.pool, spec);
    const { name, events, db } = this.options;
    this.options.logger.info({ table: name, estimatedRows, reasons }, 'loading table');
    events.emit('loadStarted', { table: name, estimatedRows, reasons });
    db.streamedRows = 0;
    const progress = setInterval(() => {
      events.emit('loadProgress', { table: name, rows: db.streamedRows, estimatedRows, elapsedMs: performance.now() - started });
    }, PROGRESS_INTERVAL_MS);
    progress.unref();
    try {
      const table = new CachedTable(this.options.indexes, db, this.writer.storageForLoad(), { logger: this.options.logger });
      const { loaded } = await table.load(PRIMARY_KEY_INDEX, { all: true });
      await this.writer.published();
      this.table = table;
      return { records: loaded, ms: performance.now() - started };
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * The change source's position saved with the live generation in Redis,
   * when this writer can continue that generation as it is (see
   * {@link resume}); `null` when the table must be loaded.
   */
  async savedPosition(): Promise<string | null> {
    return this.writer.savedPosition();
  }

  /** Whether this daemon still holds the table's writer lease. */
  async writable(): Promise<boolean> {
    return this.writer.writable();
  }

  /** Saves the change source's position with the published generation: every change before it is in Redis. */
  async savePosition(position: string): Promise<void> {
    await this.writer.savePosition(position);
  }

  /**
   * Takes the live generation over as it is, without reading Postgres: for a
   * restarted daemon whose saved position ({@link savedPosition}) the change
   * source can replay from. Refreshes then apply to that generation.
   */
  async resume(): Promise<void> {
    let resuming = true;
    // The "load" reads nothing (the records are in Redis already); the refreshes after it read the database.
    const db: DbAccess = { getRecords: (spec) => (resuming ? NO_ROWS.getRecords(spec) : this.options.db.getRecords(spec)) };
    const table = new CachedTable(this.options.indexes, db, new ResumedStorage(this.writer.storageForLoad()), { logger: this.options.logger });
    await table.load(PRIMARY_KEY_INDEX, { all: true });
    resuming = false;
    await this.writer.published();
    this.table = table;
  }

  /**
   * Refreshes the records `changes` names, every read in `snapshot`: runs the `resolve` queries (one
   * per source, all keys in one array per key column), invalidates one spec
   * per index holding all of its keys, and refreshes them in one merge, one
   * database query per index.
   */
  async refresh(changes: TableChanges, snapshot: StepSnapshot, readAhead: RefreshReadAhead | null = null): Promise<TableRefreshCounts> {
    const ahead = readAhead !== null && readAhead.session === snapshot.session ? readAhead : null;
    return this.inSnapshot(snapshot, () => this.refreshKeys(changes, snapshot.session, ahead));
  }

  /**
   * Starts reading, in the session of a snapshot S whose cut is not proven
   * yet, the records of `changes` (what the changes queued and visible in S
   * name: the step's cut holds them all); {@link refresh} then uses them.
   * Only direct keys are read ahead: `resolve` keys need their query first.
   * `null` when there is nothing to read, or the table is not loaded.
   */
  readAhead(changes: TableChanges, session: pg.ClientBase): RefreshReadAhead | null {
    if (this.table === null) return null;
    const { indexes, db } = this.options;
    const byIndex = new Map<string, IndexReadAhead>();
    for (const [indexName, byKey] of changes.keysByIndex) {
      if (byKey.size === 0) continue;
      const spec = indexes.dbRecordsSpec(indexes.keySpec(indexName, byKey.values()));
      byIndex.set(indexName, { keys: new Set(byKey.keys()), records: db.readKeys(session, spec) });
    }
    return byIndex.size === 0 ? null : new RefreshReadAhead(session, byIndex);
  }

  /** Runs `read` with every database read (load, refresh, resolve) in `snapshot`'s session. */
  private async inSnapshot<T>(snapshot: StepSnapshot, read: () => Promise<T>): Promise<T> {
    this.options.db.session = snapshot.session;
    try {
      return await read();
    } finally {
      this.options.db.session = null;
      this.options.db.clearSubstitutes();
    }
  }

  private async refreshKeys(changes: TableChanges, session: pg.ClientBase | null, readAhead: RefreshReadAhead | null): Promise<TableRefreshCounts> {
    const table = this.table;
    if (table === null) throw new NotLoadedError(`Table "${this.name}" is not loaded; reload it before refreshing.`);
    await readAhead?.settled();
    const keysByIndex = new Map(changes.keysByIndex);
    for (const [source, keys] of changes.resolveKeys) {
      const resolved = await this.resolve(session ?? this.options.pool, source, [...keys.values()]);
      if (resolved.size > 0) keysByIndex.set(PRIMARY_KEY_INDEX, new Map([...(keysByIndex.get(PRIMARY_KEY_INDEX) ?? []), ...resolved]));
    }
    let keys = 0;
    let readAheadKeys = 0;
    for (const [indexName, byKey] of keysByIndex) {
      if (byKey.size === 0) continue;
      keys += byKey.size;
      const spec = this.options.indexes.keySpec(indexName, byKey.values());
      const ahead = readAhead?.covering(indexName, byKey);
      if (ahead !== undefined) {
        // Counted when the refresh reads through it: only then were those keys not read again.
        this.options.db.substitute(this.options.indexes.dbRecordsSpec(spec), () => {
          readAheadKeys += ahead.keys.size;
          return this.readRest(indexName, byKey, ahead);
        });
      }
      // Nobody reads through this CachedTable (readers read the storage), and
      // the refresh follows at once: reads need not be held back meanwhile.
      table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    }
    if (keys === 0) return { keys, readAheadKeys, expired: 0, loaded: 0 };
    const counts = await table.refreshInvalid();
    return { keys, readAheadKeys, ...counts };
  }

  /**
   * The records of `byKey` (one index's keys of a step): those read ahead,
   * then the rest's, read now in the step's snapshot. A record has one value
   * per key column, so the two reads never yield the same record.
   */
  private async *readRest(indexName: string, byKey: ReadonlyMap<PrimaryKey, readonly unknown[]>, ahead: IndexReadAhead): AsyncGenerator<Row> {
    yield* await ahead.records;
    const rest = [...byKey].filter(([key]) => !ahead.keys.has(key)).map(([, values]) => values);
    if (rest.length === 0) return;
    const { indexes, db } = this.options;
    yield* await db.readKeys(db.session, indexes.dbRecordsSpec(indexes.keySpec(indexName, rest)));
  }

  /**
   * Runs a source's `resolve` query with `$1…$n` = the changed keys' values
   * per key column; returns the primary keys it names (canonical key → values).
   */
  private async resolve(db: pg.ClientBase | pg.Pool, source: SourceConfig, tuples: readonly (readonly unknown[])[]): Promise<Map<PrimaryKey, readonly unknown[]>> {
    const parameters = source.key.map((_, column) =>
      tuples.map((tuple) => {
        const value = canonicalKeyValue(tuple[column]);
        return value === null ? null : String(value);
      }),
    );
    const result = await db.query<unknown[]>({ text: source.resolve!, values: parameters, rowMode: 'array', types: exactTypeParsers });
    const width = this.options.indexes.primaryKeyColumns.length;
    const resolved = new Map<PrimaryKey, readonly unknown[]>();
    let nullRows = 0;
    for (const row of result.rows) {
      const values = row.slice(0, width);
      const key = canonicalKey(values);
      if (key !== null) resolved.set(key, values);
      else nullRows++;
    }
    if (nullRows > 0) {
      // A NULL names no record: nothing to refresh for that row. Usually an outer join that found no cached record, but
      // it may be a resolve query that misses changes, so it is never silent.
      this.options.logger.warn(
        { table: this.name, source: source.name, nullRows, rows: result.rows.length },
        'the resolve query returned NULL primary keys; those rows name no record and were skipped',
      );
      this.options.events.emit('resolveReturnedNull', { table: this.name, source: source.name, rows: nullRows });
    }
    return resolved;
  }

  /**
   * Whether the storage still holds what this writer published: in Redis,
   * `false` after FLUSHALL, a restart without persistence (or with an older
   * snapshot), or another writer taking over.
   */
  async storageIntact(): Promise<boolean> {
    return this.writer.intact();
  }

  /**
   * Closes the writer and opens a new one (for the {@link WriterLeaseGroup});
   * without `standby`, resolves to false when another daemon holds the
   * table (the closed writer stays, refusing every write).
   */
  async reopenWriter(standby: boolean): Promise<boolean> {
    this.table = null;
    await this.writer.close();
    try {
      await this.openWriter(standby);
      return true;
    } catch (error) {
      if (!standby && error instanceof TablecacheError && error.code === 'TC_LEASE_HELD') return false;
      throw error;
    }
  }

  /** Gives the lease up now, even with a step of this table in flight (for the {@link WriterLeaseGroup}); a reload follows the next writer. */
  async giveUpWriter(): Promise<void> {
    this.table = null;
    await this.writer.giveUp();
  }

  /** Gives the lease up; the published data stays for readers. */
  async close(): Promise<void> {
    await this.writer.close();
  }
}
