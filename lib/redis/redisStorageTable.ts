import { Redis } from 'ioredis';
import type { ScriptConnection } from './luaScript.ts';
import { ReaderFunctionKeeper } from './readerFunctions.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { CoverageUpdate, PrimaryKey, StorageTable } from '../core/storageTable.ts';
import { DEFAULT_KEY_PREFIX, primaryKeyField, TableKeys } from './keyLayout.ts';
import { writerSettings, type RedisStorageTableOptions } from './redisStorageOptions.ts';
import { encodeCoverage } from './coverageFormat.ts';
import { MessagePackRecordCodec, type RecordCodec } from './recordCodec.ts';
import { ClosedError, toTablecacheError } from './redisErrors.ts';
import { announceWriter, recoverTable } from './writerOpening.ts';
import { WriterLease } from './writerLease.ts';
import { RecordBatches, type PageRecord } from './recordBatches.ts';
import { ScratchSession } from './scratchSession.ts';
import {
  allocateKeyGroup,
  deleteRecords,
  dropKeyGroups,
  type KeyGroup,
  publishGeneration,
  putRecords,
  readCapturePosition,
  readGenerationCounts,
  readPublishedTable,
  readLeaseHolder,
  readTableWriter,
  saveCapturePosition,
  type WriterSession,
} from './writerProtocol.ts';

export type { RedisStorageTableOptions } from './redisStorageOptions.ts';

/**
 * A {@link StorageTable} in Redis that any number of reader processes share
 * (see `openReader` in `tablecache/client`); docs/redis-key-layout.md
 * describes the keys.
 *
 * - Data lives in generations. `clear()` starts a new one beside the live
 *   one; `markLoaded` switches readers to it atomically and deletes the old
 *   one, so a reload never shows readers a half-loaded table.
 * - Scratch changes are staged in Redis and published by `scratchMerge` in
 *   one atomic step, however large (big merges are applied in bounded
 *   script calls behind an overlay readers honour).
 * - One writer per table: `open` takes a lease, renews it, and every write
 *   script checks a fence token, so a writer that lost its lease stops.
 *
 * Reads here (`getRecords`, and the reads inside `deleteRecords` and
 * `scratchDiscardRecords`; `scratchDiscardPrimaryKeys` reads nothing) page
 * through the table and must not run concurrently with a merge or a direct
 * write of the same table; a {@link CachedTable} guarantees that.
 *
 * @example
 * ```ts
 * const storage = await RedisStorageTable.open({ url: 'redis://127.0.0.1:6379', table: 'users', scorer: indexes });
 * const table = new CachedTable(indexes, db, storage);
 * await table.load('primary_key', { all: true });
 * // … later
 * await storage.close();
 * ```
 */
export class RedisStorageTable<R> implements StorageTable<R>, AsyncDisposable {
  readonly name: string;
  private readonly indexNames: readonly string[];
  private readonly codec: RecordCodec<R>;
  private readonly logger: Logger;
  /** The generation this writer reads and writes; null after `clear()` until the first write. */
  private generation: number | null;
  /** The generation readers read. */
  private liveGeneration: number | null;
  private closed = false;
  private readonly batches: RecordBatches<R>;
  private readonly session: WriterSession;
  private readonly scratch: ScratchSession<R>;
  /**
   * How many records this writer left in its unpublished generation, for
   * {@link markLoaded} to check; null when unknown (a scratch merge changed it,
   * or it is the generation found at open).
   */
  private written: { readonly generation: number; records: number } | null = null;
  /** What {@link notePublished} saw, for {@link intact}. */
  private published: { readonly generation: number; readonly records: number } | null = null;

  private constructor(
    private readonly redis: ScriptConnection,
    private readonly ownsConnection: boolean,
    private readonly keys: TableKeys,
    private readonly lease: WriterLease,
    private readonly functions: ReaderFunctionKeeper,
    settings: { writeBatchSize: number; mergeBatchSize: number },
    options: RedisStorageTableOptions<R>,
    state: { liveGeneration: number | null; adoptable: boolean },
  ) {
    this.name = keys.table;
    this.indexNames = [...options.scorer.indexNames];
    this.codec = options.codec ?? (new MessagePackRecordCodec() as unknown as RecordCodec<R>);
    this.logger = options.logger ?? silentLogger;
    this.liveGeneration = state.liveGeneration;
    this.generation = state.adoptable ? state.liveGeneration : null;
    this.session = writerSession(redis, keys, this.indexNames, lease);
    this.batches = new RecordBatches({ redis, keys, scorer: options.scorer, codec: this.codec, writeBatchSize: settings.writeBatchSize });
    this.scratch = new ScratchSession({
      session: this.session,
      batches: this.batches,
      mergeBatchSize: settings.mergeBatchSize,
      logger: this.logger,
      generation: () => this.generation,
      liveGeneration: () => this.liveGeneration,
      ensureGeneration: () => this.ensureGeneration(),
    });
  }

  /**
   * Connects, takes the table's writer lease, finishes a merge a crashed
   * writer left half applied, and deletes what crashed writers left behind.
   * Continues on the live data when it was written with the same indexes and
   * codec; otherwise starts empty (readers keep the old data until `markLoaded`).
   *
   * @throws {@link LeaseHeldError} when another writer holds the table (without `standby`).
   * @throws {@link StorageFormatError} when the table was written in a key layout this version does not know.
   * @throws {@link InvalidArgumentError} for bad options.
   */
  static async open<R>(options: RedisStorageTableOptions<R>): Promise<RedisStorageTable<R>> {
    const { keys, leaseTtlMs, ...settings } = writerSettings(options);
    const redis: ScriptConnection = options.redis ?? new Redis(options.url!, { lazyConnect: true });
    const ownsConnection = options.redis === undefined;
    const logger = options.logger ?? silentLogger;
    try {
      if (ownsConnection) await redis.connect();
      const lease = await WriterLease.acquire(redis, keys, {
        ttlMs: leaseTtlMs,
        standby: options.standby ?? false,
        signal: options.signal,
        logger,
        onLost: options.onLeaseLost ?? (() => {}),
      });
      let functions: ReaderFunctionKeeper | undefined;
      try {
        await announceWriter(redis, keys, lease.writerId);
        // Checked once per lease lifetime: readers are back on functions about that long after a FUNCTION FLUSH or failover.
        functions = await ReaderFunctionKeeper.start(redis, keys.table, logger, leaseTtlMs);
        const codecId = (options.codec ?? new MessagePackRecordCodec()).id;
        const state = await recoverTable(writerSession(redis, keys, options.scorer.indexNames, lease), codecId, settings.mergeBatchSize, logger);
        return new RedisStorageTable(redis, ownsConnection, keys, lease, functions, settings, options, state);
      } catch (error) {
        functions?.stop();
        await lease.release().catch(() => {});
        throw error;
      }
    } catch (error) {
      if (ownsConnection) redis.disconnect();
      throw toTablecacheError(error, `opening table "${options.table}" for writing`);
    }
  }

  /**
   * The writer that holds the lease of `table`, or null: what a standby
   * waits for (the wait itself is {@link open}'s). `hashTag` as the writer's option.
   */
  static async leaseHolder(redis: ScriptConnection, table: string, keyPrefix: string = DEFAULT_KEY_PREFIX, hashTag?: string): Promise<string | null> {
    return readLeaseHolder(redis, new TableKeys(table, keyPrefix, hashTag));
  }

  /**
   * The change source's position saved with the live generation, when this
   * writer continues that generation as it found it at open (same indexes
   * and codec); null otherwise: the table must be loaded, not resumed.
   */
  async savedCapturePosition(): Promise<string | null> {
    if (this.generation === null || this.generation !== this.liveGeneration) return null;
    const saved = await readCapturePosition(this.redis, this.keys);
    return saved !== null && saved.generation === this.generation ? saved.position : null;
  }

  /**
   * Saves the change source's position with the live generation: every
   * change before it is in what readers see. Nothing is saved when this
   * writer's generation is not the live one.
   *
   * @throws {@link LeaseLostError} when another writer holds the table.
   */
  async saveCapturePosition(position: string): Promise<void> {
    if (this.generation === null || this.generation !== this.liveGeneration) return;
    await saveCapturePosition(this.session, { generation: this.generation, position });
  }

  /** The writer's id, as shown in the lease and to readers' `info()`. */
  get writerId(): string {
    return this.lease.writerId;
  }

  /**
   * Starts a new, empty generation beside the live one (readers keep reading
   * the live one until {@link markLoaded}) and drops staged scratch changes.
   */
  async clear(): Promise<void> {
    this.assertWritable();
    await this.scratch.settleInterruptedMerge();
    const groups = [...this.scratch.takeForClear(), ...this.unpublishedGeneration()];
    this.generation = null;
    if (groups.length > 0) await dropKeyGroups(this.session, { groups, doing: 'clearing' });
  }

  /**
   * Stores records in batches (one script call per batch, several in flight),
   * replacing records with the same primary key. Straight into the
   * generation: use it for loads, which readers see only at `markLoaded`.
   *
   * @throws {@link InvalidArgumentError} for a record without a valid primary key or with a NaN score, or during a scratch session.
   */
  async putRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    this.assertWritable();
    await this.scratch.settleInterruptedMerge();
    this.assertNoScratchSession('putRecords');
    const generation = await this.ensureGeneration();
    return this.batches.writeInBatches(records, async (batch) => {
      const added = await putRecords(this.session, { generation, records: batch });
      if (this.written?.generation === generation) this.written.records += added;
    });
  }

  async *getRecords(spec: StorageRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    this.assertOpen();
    this.assertIndexName(spec.indexName);
    const generation = this.generation;
    if (generation === null) return;
    for await (const page of this.batches.pages(this.keys.index(generation, spec.indexName), this.keys.records(generation), spec.scoreIntervals)) {
      for (const { record } of page) if (spec.accepts(record)) yield record;
    }
  }

  /**
   * Deletes the records the spec selects, page by page (each page in one
   * script call), yielding each deleted record. Readers see each page's
   * deletion as it happens: use it in loads, or use scratch space.
   */
  async *deleteRecords(spec: StorageRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    this.assertWritable();
    this.assertIndexName(spec.indexName);
    await this.scratch.settleInterruptedMerge();
    this.assertNoScratchSession('deleteRecords');
    const generation = this.generation;
    if (generation === null) return;
    let deleted = new Set<PageRecord<R>>();
    const remaining = (entries: readonly PageRecord<R>[]) => entries.filter((entry) => !deleted.has(entry)).length;
    for await (const page of this.batches.pages(this.keys.index(generation, spec.indexName), this.keys.records(generation), spec.scoreIntervals, remaining)) {
      deleted = new Set(page.filter(({ record }) => spec.accepts(record)));
      if (deleted.size === 0) continue;
      const existed = await deleteRecords(this.session, { generation, fields: [...deleted].map(({ field }) => field) });
      if (this.written?.generation === generation) this.written.records -= existed;
      for (const { record } of deleted) yield record;
    }
  }

  /** Stages records; readers and `getRecords` see them only after {@link scratchMerge}. */
  async scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    this.assertWritable();
    await this.scratch.settleInterruptedMerge();
    return this.scratch.put(records);
  }

  /**
   * Stages the deletion of the records `getRecords(spec)` returns now and
   * yields them; also withdraws staged puts the spec selects (so that
   * staging behaves like applying the calls in order).
   */
  async *scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    this.assertWritable();
    this.assertIndexName(spec.indexName);
    await this.scratch.settleInterruptedMerge();
    const generation = this.generation;
    if (generation === null) return;
    yield* this.scratch.discard(generation, spec);
  }

  /**
   * Stages the deletion of the records with these primary keys without
   * reading them (a key without a record is ignored); also withdraws staged
   * puts of them. A small session stays in the writer's memory, so this
   * costs no round trip until {@link scratchMerge}.
   *
   * @throws {@link InvalidArgumentError} for a key that is not a string, a bigint or a finite number (nothing is staged then).
   */
  async scratchDiscardPrimaryKeys(keys: readonly PrimaryKey[]): Promise<void> {
    this.assertWritable();
    const fields = keys.map(primaryKeyField);
    await this.scratch.settleInterruptedMerge();
    // No generation: nothing to delete, and nothing staged (staging starts one).
    if (this.generation === null) return;
    await this.scratch.discardFields(fields);
  }

  /**
   * Publishes every staged change, and the coverage update if given, in one
   * atomic step for readers. A session larger than `mergeBatchSize` is
   * applied in several bounded script calls after that step.
   */
  async scratchMerge(update?: CoverageUpdate): Promise<void> {
    this.assertWritable();
    await this.scratch.settleInterruptedMerge();
    // The merge's count change is Redis's to compute; the count of an unpublished generation becomes unknown here.
    this.written = null;
    await this.scratch.merge(this.generation, update);
  }

  /** Drops everything staged since the last merge (its keys are deleted); readers never saw any of it. */
  async scratchReset(): Promise<void> {
    this.assertWritable();
    const groups = await this.scratch.reset();
    if (groups.length > 0) await dropKeyGroups(this.session, { groups, doing: 'dropping staged changes' });
  }

  /**
   * Switches readers to this writer's generation in one atomic step, with
   * the coverage it establishes, and deletes the generation readers used
   * before. Staged scratch changes stay staged.
   *
   * @throws {@link IncompleteGenerationError} when Redis no longer holds every
   *   record written into the generation (an evicting Redis dropped some of its
   *   keys meanwhile): nothing is published; `clear()` and load again.
   */
  async markLoaded(update: CoverageUpdate): Promise<void> {
    this.assertWritable();
    const generation = await this.ensureGeneration();
    const records = this.written?.generation === generation ? this.written.records : null;
    const coverage = encodeCoverage(update.coverage);
    const previous = await publishGeneration(this.session, { generation, codec: this.codec.id, coverage, records });
    this.liveGeneration = generation;
    if (previous === null || previous === generation) return;
    // Readers resolve the generation inside each script, so none can still be reading the old one.
    try {
      await dropKeyGroups(this.session, { groups: [{ generation: previous }], doing: 'deleting the previous generation' });
    } catch (error) {
      this.logger.warn({ table: this.name, generation: previous, err: error }, 'could not delete the previous generation; the next writer will');
    }
  }

  /** Remembers the generation readers read now and its record count, for {@link intact}. */
  async notePublished(): Promise<void> {
    const { generation } = await readPublishedTable(this.redis, this.keys);
    this.published = generation === null ? null : { generation, records: (await readGenerationCounts(this.redis, this.keys, generation, [])).records };
  }

  /**
   * Whether Redis still holds the generation {@link notePublished} saw,
   * whole, under this writer's lease (true before it saw one): `false`
   * after FLUSHALL, a restart without persistence (or with an older
   * snapshot), another writer taking over, or an eviction that took some of
   * the generation's keys: the records hash and every index must hold
   * `meta.count` records, the count the load published and every later
   * step moved by what it changed (scripts/liveRecordCount.lua). So a
   * records hash and indexes that were evicted and then recreated in part by
   * later refreshes, which agree with each other, fail the check too. While
   * a large merge is half applied (the overlay is set) the counts are in
   * flux and the answer is true; the check after the merge looks again. The
   * counts are read in one pipeline, not a MULTI (which the documented
   * least-privilege ACL user may not run): call it between writer steps,
   * when nothing changes them. A table published before `meta.count`
   * existed, with no step since, is checked as before it: records hash and
   * indexes agree, and are not empty when the load was not.
   */
  async intact(): Promise<boolean> {
    const published = this.published;
    if (published === null) return true;
    const table = await readPublishedTable(this.redis, this.keys);
    if (table.generation !== published.generation || table.writer !== this.writerId) return false;
    // A merge left half applied (the next one finishes it) has the counts in flux; the check after it looks again.
    if (table.overlay !== null || table.indexNames === null) return true;
    const counts = await readGenerationCounts(this.redis, this.keys, published.generation, table.indexNames);
    if (counts.liveGeneration !== published.generation) return false;
    if (counts.indexes.some((count) => count !== counts.records)) return false;
    if (counts.liveRecordCount !== null) return counts.records === counts.liveRecordCount;
    return !(published.records > 0 && counts.records === 0);
  }

  /** Whether the table's metadata still names this writer: Redis may have lost the lease (flush, restart) before a renewal noticed. */
  async writable(): Promise<boolean> {
    return (await readTableWriter(this.redis, this.keys)) === this.writerId;
  }

  /**
   * Gives the lease up at once and refuses every later write, leaving the
   * cleanup of this writer's keys to the next writer; unlike {@link close},
   * safe while a step of this writer is in flight (its staged keys are not
   * deleted under it, and once another writer takes the lease the fence
   * stops the step). Call {@link close} afterwards.
   */
  async giveUpLease(): Promise<void> {
    await this.lease.giveUp();
  }

  /**
   * Deletes what only this writer used (an unpublished generation, staged
   * changes), gives the lease up, and closes the connection if it opened it.
   * Published data stays for readers.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.functions.stop();
    try {
      const groups = [...this.scratch.groupsToDropOnClose(), ...this.unpublishedGeneration()];
      if (groups.length > 0 && this.leaseHeld()) {
        // A refused fence here is logged below, not reported as a lost lease: the writer is going anyway.
        await dropKeyGroups({ ...this.session, leaseLost: (detail) => new Error(`TC_LEASE_LOST ${detail}`) }, { groups, doing: 'closing' });
      }
      await this.lease.release();
    } catch (error) {
      this.logger.warn({ table: this.name, err: error }, 'closing the writer did not finish cleaning up; the next writer will');
    } finally {
      if (this.ownsConnection) await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** This writer's generation as a key group to drop, unless readers read it. */
  private unpublishedGeneration(): KeyGroup[] {
    return this.generation !== null && this.generation !== this.liveGeneration ? [{ generation: this.generation }] : [];
  }

  private leaseHeld(): boolean {
    try {
      this.lease.assertHeld();
      return true;
    } catch {
      return false;
    }
  }

  private async ensureGeneration(): Promise<number> {
    if (this.generation !== null) return this.generation;
    const generation = await allocateKeyGroup(this.session, 'generation');
    this.generation = generation;
    this.written = { generation, records: 0 };
    return generation;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`The writer of table "${this.name}" is closed.`);
  }

  private assertWritable(): void {
    this.assertOpen();
    this.lease.assertHeld();
  }

  private assertIndexName(indexName: string): void {
    if (!this.indexNames.includes(indexName)) {
      throw new InvalidArgumentError(`Table "${this.name}" has no index "${indexName}"; its indexes are ${this.indexNames.join(', ')}.`);
    }
  }

  private assertNoScratchSession(operation: string): void {
    if (this.scratch.staged) {
      throw new InvalidArgumentError(
        `${operation} writes straight into table "${this.name}", but scratch changes are staged; call scratchMerge() (or clear()) first.`,
      );
    }
  }
}

/** The protocol's view of a writer: a refused fence token marks the lease lost. */
function writerSession(redis: ScriptConnection, keys: TableKeys, indexNames: readonly string[], lease: WriterLease): WriterSession {
  return { redis, keys, indexNames, fence: lease.fence, leaseLost: (detail, dataLost) => lease.markLost(detail, dataLost) };
}
