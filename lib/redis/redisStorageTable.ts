import { Redis } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { CoverageUpdate, RecordScorer, StorageTable } from '../core/storageTable.ts';
import {
  LAYOUT_FORMAT_VERSION,
  MetaField,
  TableKeys,
  generationGroup,
  stagingGroup,
} from './keyLayout.ts';
import { encodeCoverage } from './coverageFormat.ts';
import type { LuaScript, RedisArgument } from './luaScript.ts';
import { MessagePackRecordCodec, type RecordCodec } from './recordCodec.ts';
import { ClosedError, type LeaseLostError, toTablecacheError } from './redisErrors.ts';
import { writerScripts } from './scripts/writerScripts.ts';
import { announceWriter, loadReaderFunctions, recoverTable } from './writerOpening.ts';
import { WriterLease } from './writerLease.ts';
import { MAX_BATCH_BYTES, RecordBatches, type EncodedBatch, type PageRecord } from './recordBatches.ts';

/** Options of {@link RedisStorageTable.open}. */
export interface RedisStorageTableOptions<R> {
  /** A connection to use (left open by `close`). Give this or `url`. */
  readonly redis?: Redis;
  /** A Redis URL to connect to (the connection is closed by `close`). */
  readonly url?: string;
  /** The table name; readers open the table by it. */
  readonly table: string;
  /** Primary keys and index scores of records. */
  readonly scorer: RecordScorer<R>;
  /** Start of every key name inside the hash tag (default `tablecache:`). */
  readonly keyPrefix?: string;
  /** Record encoding (default {@link MessagePackRecordCodec}); readers must use the same. */
  readonly codec?: RecordCodec<R>;
  /** Lease lifetime without renewal, in ms (default 10,000); a standby takes over at most this long after a crash. */
  readonly leaseTtlMs?: number;
  /** Wait until the current writer's lease expires instead of failing with {@link LeaseHeldError}. */
  readonly standby?: boolean;
  /** Aborts a standby wait. */
  readonly signal?: AbortSignal;
  /** Records per write script call (default 1,000); batches are also cut at about 1 MB. */
  readonly writeBatchSize?: number;
  /** Staged changes a merge applies per script call (default 2,000): bounds how long one call blocks Redis. */
  readonly mergeBatchSize?: number;
  /** Where lease changes and recoveries are logged. */
  readonly logger?: Logger;
  /** Called once when the lease is found lost; every later write throws {@link LeaseLostError}. */
  readonly onLeaseLost?: (error: LeaseLostError) => void;
}

const DEFAULTS = {
  keyPrefix: 'tablecache:',
  leaseTtlMs: 10_000,
  writeBatchSize: 1_000,
  mergeBatchSize: 2_000,
  heldBackChanges: 256,
} as const;

interface Staging {
  readonly id: number;
  /** How the record count changes when the session is merged. */
  delta: number;
  /** Whether a merge of the session was started (and may have been cut off). */
  merging: boolean;
  /** Whether a put was staged: until then the session's staged indexes are empty and nothing needs withdrawing. */
  putsStaged: boolean;
}

/**
 * A scratch session small enough to stay in the writer's memory: the merge
 * applies it to the generation in one script call (applyChanges.lua) instead
 * of staging it in Redis first, which saves a daemon's single-key refresh two
 * round trips. Held back only while every deletion came before every put, so
 * that applying deletions first keeps the order of the calls.
 */
interface HeldBackChanges {
  readonly deletions: string[];
  /** Flattened like a stagePut batch without its count: field, bytes, one score per index. */
  readonly puts: RedisArgument[];
  putCount: number;
  bytes: number;
}

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
 * `scratchDiscardRecords`) page through the table and must not run
 * concurrently with a merge or a direct write of the same table; a
 * {@link CachedTable} guarantees that.
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
  private staging: Staging | null = null;
  /** Scratch changes not sent yet; while set, `staging` is null. */
  private heldBack: HeldBackChanges | null = null;
  /** The running allocation of a scratch session, while one runs. */
  private stagingAllocation: Promise<Staging> | null = null;
  private closed = false;
  private readonly batches: RecordBatches<R>;

  private constructor(
    private readonly redis: Redis,
    private readonly ownsConnection: boolean,
    private readonly keys: TableKeys,
    private readonly scorer: RecordScorer<R>,
    private readonly lease: WriterLease,
    private readonly settings: { writeBatchSize: number; mergeBatchSize: number },
    options: RedisStorageTableOptions<R>,
    state: { liveGeneration: number | null; adoptable: boolean },
  ) {
    this.name = keys.table;
    this.indexNames = [...scorer.indexNames];
    this.codec = options.codec ?? (new MessagePackRecordCodec() as unknown as RecordCodec<R>);
    this.logger = options.logger ?? silentLogger;
    this.liveGeneration = state.liveGeneration;
    this.generation = state.adoptable ? state.liveGeneration : null;
    this.batches = new RecordBatches({
      table: this.name,
      scorer,
      codec: this.codec,
      writeBatchSize: settings.writeBatchSize,
      read: (script, scriptKeys, args) => this.read(script, scriptKeys, args),
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
    const keys = new TableKeys(options.table, options.keyPrefix ?? DEFAULTS.keyPrefix);
    const settings = {
      writeBatchSize: positiveInteger(options.writeBatchSize ?? DEFAULTS.writeBatchSize, 'writeBatchSize'),
      mergeBatchSize: positiveInteger(options.mergeBatchSize ?? DEFAULTS.mergeBatchSize, 'mergeBatchSize'),
    };
    const leaseTtlMs = positiveInteger(options.leaseTtlMs ?? DEFAULTS.leaseTtlMs, 'leaseTtlMs');
    if (options.scorer.indexNames.length === 0) throw new InvalidArgumentError('The scorer must name at least one index.');
    if ((options.redis === undefined) === (options.url === undefined)) {
      throw new InvalidArgumentError('Give RedisStorageTable.open exactly one of `redis` (a connection) or `url`.');
    }
    const redis = options.redis ?? new Redis(options.url!, { lazyConnect: true });
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
      try {
        await announceWriter(redis, keys, lease.writerId);
        await loadReaderFunctions(redis, keys, logger);
        const codecId = (options.codec ?? new MessagePackRecordCodec()).id;
        const state = await recoverTable(redis, keys, lease.fence, options.scorer.indexNames, codecId, settings.mergeBatchSize, logger);
        return new RedisStorageTable(redis, ownsConnection, keys, options.scorer, lease, settings, options, state);
      } catch (error) {
        await lease.release().catch(() => {});
        throw error;
      }
    } catch (error) {
      if (ownsConnection) redis.disconnect();
      throw toTablecacheError(error, `opening table "${options.table}" for writing`);
    }
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
    await this.settleInterruptedMerge();
    const groups: string[] = [];
    if (this.staging) groups.push(stagingGroup(this.staging.id));
    if (this.generation !== null && this.generation !== this.liveGeneration) groups.push(generationGroup(this.generation));
    this.staging = null;
    this.generation = null;
    if (groups.length > 0) await this.write(writerScripts.dropKeyGroups, [this.keys.meta, this.keys.owned], groups, 'clearing');
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
    await this.settleInterruptedMerge();
    this.assertNoScratchSession('putRecords');
    const generation = await this.ensureGeneration();
    const keys = [this.keys.meta, this.keys.records(generation), ...this.indexNames.map((name) => this.keys.index(generation, name))];
    return this.batches.writeInBatches(records, ({ args }) => this.write(writerScripts.putRecords, keys, args, 'storing records'));
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
    await this.settleInterruptedMerge();
    this.assertNoScratchSession('deleteRecords');
    const generation = this.generation;
    if (generation === null) return;
    const keys = [this.keys.meta, this.keys.records(generation), ...this.indexNames.map((name) => this.keys.index(generation, name))];
    let deleted = new Set<PageRecord<R>>();
    const remaining = (entries: readonly PageRecord<R>[]) => entries.filter((entry) => !deleted.has(entry)).length;
    for await (const page of this.batches.pages(this.keys.index(generation, spec.indexName), keys[1]!, spec.scoreIntervals, remaining)) {
      deleted = new Set(page.filter(({ record }) => spec.accepts(record)));
      if (deleted.size === 0) continue;
      await this.write(writerScripts.deleteRecords, keys, [...deleted].map(({ field }) => field), 'deleting records');
      for (const { record } of deleted) yield record;
    }
  }

  /** Stages records; readers and `getRecords` see them only after {@link scratchMerge}. */
  async scratchPutRecords(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    this.assertWritable();
    await this.settleInterruptedMerge();
    // Every batch waits for the same promise, so held-back changes reach Redis before any batch after them.
    let staged: Promise<Staging> | null = null;
    return this.batches.writeInBatches(records, async (batch) => {
      if (staged === null && batch.last && this.canHoldBack(batch.records, batch.bytes)) {
        this.holdBackPuts(batch);
        return;
      }
      staged ??= this.stageHeldBack();
      const staging = await staged;
      // Set before the call: a script that fails half way may have staged some puts.
      staging.putsStaged = true;
      // Read the delta after the await: `delta += await …` would add to the value from before it and lose the other batches' shares.
      const delta = Number(await this.write(writerScripts.stagePut, this.stagingScriptKeys(staging), batch.args, 'staging records'));
      staging.delta += delta;
    });
  }

  /**
   * Stages the deletion of the records `getRecords(spec)` returns now and
   * yields them; also withdraws staged puts the spec selects (so that
   * staging behaves like applying the calls in order).
   */
  async *scratchDiscardRecords(spec: StorageRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    this.assertWritable();
    this.assertIndexName(spec.indexName);
    await this.settleInterruptedMerge();
    const generation = this.generation;
    if (generation === null) return;
    // Held-back puts the spec selects must be withdrawn, which works on staged ones.
    if ((this.heldBack?.putCount ?? 0) > 0) await this.stageHeldBack();
    for await (const page of this.batches.pages(this.keys.index(generation, spec.indexName), this.keys.records(generation), spec.scoreIntervals)) {
      const discarded = page.filter(({ record }) => spec.accepts(record));
      if (discarded.length === 0) continue;
      const fields = discarded.map(({ field }) => field);
      if (this.canHoldBack(fields.length, 0)) {
        this.holdBack().deletions.push(...fields);
      } else {
        await this.stageHeldBack();
        await this.stageDiscard('live', fields);
      }
      for (const { record } of discarded) yield record;
    }
    await this.withdrawStagedPuts(spec);
  }

  /**
   * Publishes every staged change, and the coverage update if given, in one
   * atomic step for readers. A session larger than `mergeBatchSize` is
   * applied in several bounded script calls after that step.
   */
  async scratchMerge(update?: CoverageUpdate): Promise<void> {
    this.assertWritable();
    await this.settleInterruptedMerge();
    const generation = this.generation;
    if (generation === null) {
      this.staging = null;
      return;
    }
    const staging = this.staging;
    const coverage = update === undefined ? '' : encodeCoverage(update.coverage);
    const live = generation === this.liveGeneration;
    if (this.heldBack !== null) return this.applyHeldBack(generation, live, coverage);
    if (staging) staging.merging = true;
    let remaining = await this.mergeStep(generation, staging?.id ?? 0, staging?.delta ?? 0, true, live, coverage);
    while (remaining > 0) remaining = await this.mergeStep(generation, staging!.id, 0, false, live, '');
    this.staging = null;
  }

  /**
   * After a merge was cut off (Redis unreachable, say), finds out from Redis
   * how far it got before anything touches the session again: readers may
   * already see it through the overlay, and then its keys must stay until it
   * is applied. Overlay set: the merge is finished now. Session unlisted in
   * `owned`: it completed. Still listed without overlay: in the live
   * generation it never started (a started one sets the overlay or
   * completes), so it stays staged; in an unpublished generation, which no
   * reader sees, it is finished now.
   */
  private async settleInterruptedMerge(): Promise<void> {
    const staging = this.staging;
    const generation = this.generation;
    if (staging === null || !staging.merging || generation === null) return;
    const [overlay, listed] = await Promise.all([
      this.redis.hget(this.keys.meta, MetaField.overlay),
      this.redis.hexists(this.keys.owned, stagingGroup(staging.id)),
    ]).catch((error: unknown) => {
      throw toTablecacheError(error, `checking an interrupted merge of table "${this.name}"`);
    });
    const live = generation === this.liveGeneration;
    if (listed === 1 && live && overlay !== String(staging.id)) {
      staging.merging = false;
      return;
    }
    if (listed === 1) {
      this.logger.warn({ table: this.name, staging: staging.id }, 'finishing a merge that was cut off');
      let remaining: number;
      do remaining = await this.mergeStep(generation, staging.id, 0, false, live, '');
      while (remaining > 0);
    }
    this.staging = null;
  }

  /** Drops everything staged since the last merge (its keys are deleted); readers never saw any of it. */
  async scratchReset(): Promise<void> {
    this.assertWritable();
    this.heldBack = null;
    await this.settleInterruptedMerge();
    const staging = this.staging;
    if (staging === null) return;
    this.staging = null;
    await this.write(writerScripts.dropKeyGroups, [this.keys.meta, this.keys.owned], [stagingGroup(staging.id)], 'dropping staged changes');
  }

  /**
   * Switches readers to this writer's generation in one atomic step, with
   * the coverage it establishes, and deletes the generation readers used
   * before. Staged scratch changes stay staged.
   */
  async markLoaded(update: CoverageUpdate): Promise<void> {
    this.assertWritable();
    const generation = await this.ensureGeneration();
    const previous = await this.write(
      writerScripts.publishGeneration,
      [this.keys.meta],
      [String(generation), LAYOUT_FORMAT_VERSION, this.codec.id, JSON.stringify(this.indexNames), encodeCoverage(update.coverage), String(Date.now())],
      'publishing the loaded generation',
    );
    this.liveGeneration = generation;
    if (previous === null) return;
    const previousGeneration = Number(String(previous));
    if (previousGeneration === generation) return;
    // Readers resolve the generation inside each script, so none can still be reading the old one.
    try {
      await this.write(writerScripts.dropKeyGroups, [this.keys.meta, this.keys.owned], [generationGroup(previousGeneration)], 'deleting the previous generation');
    } catch (error) {
      this.logger.warn({ table: this.name, generation: previousGeneration, err: error }, 'could not delete the previous generation; the next writer will');
    }
  }

  /**
   * Deletes what only this writer used (an unpublished generation, staged
   * changes), gives the lease up, and closes the connection if it opened it.
   * Published data stays for readers.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      const groups: string[] = [];
      // A session whose merge was cut off may be what readers see (the overlay): the next writer finishes it.
      if (this.staging && !this.staging.merging) groups.push(stagingGroup(this.staging.id));
      if (this.generation !== null && this.generation !== this.liveGeneration) groups.push(generationGroup(this.generation));
      if (groups.length > 0 && this.leaseHeld()) {
        await writerScripts.dropKeyGroups.run(this.redis, [this.keys.meta, this.keys.owned], [this.lease.fence, ...groups]);
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

  private leaseHeld(): boolean {
    try {
      this.lease.assertHeld();
      return true;
    } catch {
      return false;
    }
  }

  private async mergeStep(generation: number, stagingId: number, delta: number, first: boolean, live: boolean, coverage: string): Promise<number> {
    const keys = [
      this.keys.meta,
      this.keys.owned,
      this.keys.records(generation),
      this.keys.stagedRecords(stagingId),
      this.keys.stagedDeletes(stagingId),
      ...this.indexNames.map((name) => this.keys.index(generation, name)),
      ...this.indexNames.map((name) => this.keys.stagedIndex(stagingId, name)),
    ];
    const args = [this.settings.mergeBatchSize, first ? '1' : '0', live ? '1' : '0', stagingId, delta, coverage, Date.now()];
    return Number(await this.write(writerScripts.mergeStep, keys, args, 'merging scratch space'));
  }

  private async withdrawStagedPuts(spec: StorageRecordsSpec<R>): Promise<void> {
    const staging = this.staging;
    if (staging === null || !staging.putsStaged) return;
    let withdrawn = new Set<PageRecord<R>>();
    const remaining = (entries: readonly PageRecord<R>[]) => entries.filter((entry) => !withdrawn.has(entry)).length;
    const index = this.keys.stagedIndex(staging.id, spec.indexName);
    for await (const page of this.batches.pages(index, this.keys.stagedRecords(staging.id), spec.scoreIntervals, remaining)) {
      withdrawn = new Set(page.filter(({ record }) => spec.accepts(record)));
      if (withdrawn.size > 0) await this.stageDiscard('staged', [...withdrawn].map(({ field }) => field));
    }
  }

  private async stageDiscard(mode: 'live' | 'staged', fields: readonly string[]): Promise<void> {
    const staging = await this.ensureStaging();
    const delta = Number(await this.write(writerScripts.stageDiscard, this.stagingScriptKeys(staging), [mode, ...fields], 'staging deletions'));
    staging.delta += delta;
  }

  /** Whether `changes` more changes (of `bytes` encoded bytes) may stay in memory instead of being staged in Redis. */
  private canHoldBack(changes: number, bytes: number): boolean {
    if (this.generation === null || this.staging !== null || this.stagingAllocation !== null) return false;
    const held = this.heldBack;
    const heldChanges = (held?.deletions.length ?? 0) + (held?.putCount ?? 0);
    // Applied in one call, so no more than one merge step may apply.
    const limit = Math.min(DEFAULTS.heldBackChanges, this.settings.mergeBatchSize);
    return heldChanges + changes <= limit && (held?.bytes ?? 0) + bytes <= MAX_BATCH_BYTES;
  }

  private holdBack(): HeldBackChanges {
    this.heldBack ??= { deletions: [], puts: [], putCount: 0, bytes: 0 };
    return this.heldBack;
  }

  private holdBackPuts(batch: EncodedBatch): void {
    const held = this.holdBack();
    // args[0] is the batch's record count.
    for (let i = 1; i < batch.args.length; i++) held.puts.push(batch.args[i]!);
    held.putCount += batch.records;
    held.bytes += batch.bytes;
  }

  /** Moves held-back changes into a scratch session in Redis (the session outgrew memory, or staged puts must be withdrawn); returns the session. */
  private async stageHeldBack(): Promise<Staging> {
    const held = this.heldBack;
    this.heldBack = null;
    if (held !== null && held.deletions.length > 0) await this.stageDiscard('live', held.deletions);
    const staging = await this.ensureStaging();
    if (held === null || held.putCount === 0) return staging;
    staging.putsStaged = true;
    const delta = Number(await this.write(writerScripts.stagePut, this.stagingScriptKeys(staging), [held.putCount, ...held.puts], 'staging records'));
    staging.delta += delta;
    return staging;
  }

  /**
   * The merge of a held-back session: one atomic script call. A failed call
   * keeps the session for the next merge; applying it twice (when only the
   * reply was lost) leaves the same records.
   */
  private async applyHeldBack(generation: number, live: boolean, coverage: string): Promise<void> {
    const held = this.heldBack!;
    const keys = [this.keys.meta, this.keys.records(generation), ...this.indexNames.map((name) => this.keys.index(generation, name))];
    const args = [live ? '1' : '0', coverage, Date.now(), held.deletions.length, ...held.deletions, held.putCount, ...held.puts];
    await this.write(writerScripts.applyChanges, keys, args, 'applying scratch changes');
    this.heldBack = null;
  }

  private stagingScriptKeys(staging: Staging): string[] {
    return [
      this.keys.meta,
      this.keys.records(this.generation!),
      this.keys.stagedRecords(staging.id),
      this.keys.stagedDeletes(staging.id),
      ...this.indexNames.map((name) => this.keys.stagedIndex(staging.id, name)),
    ];
  }

  private async ensureGeneration(): Promise<number> {
    if (this.generation !== null) return this.generation;
    const suffixes = [':r', ...this.indexNames.map((name) => `:i:${name}`)];
    const id = await this.write(writerScripts.allocateKeyGroup, [this.keys.meta, this.keys.owned], ['g', this.keys.base, ...suffixes], 'starting a generation');
    this.generation = Number(id);
    return this.generation;
  }

  /** The scratch session, allocated on first use; concurrent callers share one allocation. */
  private ensureStaging(): Promise<Staging> {
    if (this.staging !== null) return Promise.resolve(this.staging);
    this.stagingAllocation ??= this.allocateStaging().finally(() => {
      this.stagingAllocation = null;
    });
    return this.stagingAllocation;
  }

  private async allocateStaging(): Promise<Staging> {
    await this.ensureGeneration();
    const suffixes = [':r', ':d', ...this.indexNames.map((name) => `:i:${name}`)];
    const id = await this.write(writerScripts.allocateKeyGroup, [this.keys.meta, this.keys.owned], ['s', this.keys.base, ...suffixes], 'starting a scratch session');
    this.staging = { id: Number(id), delta: 0, merging: false, putsStaged: false };
    return this.staging;
  }

  /** Runs a write script with this writer's fence token as its first argument. */
  private async write(script: LuaScript, keys: readonly string[], args: readonly RedisArgument[], doing: string): Promise<unknown> {
    try {
      return await script.run(this.redis, keys, [this.lease.fence, ...args]);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('TC_LEASE_LOST')) throw this.lease.markLost(error.message.slice('TC_LEASE_LOST '.length));
      throw toTablecacheError(error, `${doing} in table "${this.name}"`);
    }
  }

  private async read(script: LuaScript, keys: readonly string[], args: readonly RedisArgument[]): Promise<unknown> {
    try {
      return await script.run(this.redis, keys, args);
    } catch (error) {
      throw toTablecacheError(error, `reading table "${this.name}"`);
    }
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
    if (this.staging !== null) {
      throw new InvalidArgumentError(
        `${operation} writes straight into table "${this.name}", but scratch changes are staged; call scratchMerge() (or clear()) first.`,
      );
    }
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}.`);
  return value;
}
