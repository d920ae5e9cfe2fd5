import type { Logger } from '../core/logger.ts';
import type { StorageRecordsSpec } from '../core/storageRecordsSpec.ts';
import type { CoverageUpdate } from '../core/storageTable.ts';
import { encodeCoverage } from './coverageFormat.ts';
import type { RedisArgument } from './luaScript.ts';
import { MAX_BATCH_BYTES, type EncodedBatch, type PageRecord, type RecordBatches } from './recordBatches.ts';
import { toTablecacheError } from './redisErrors.ts';
import { allocateKeyGroup, applyChanges, type KeyGroup, mergeStep, readMergeProgress, stageDiscard, stagePut, type WriterSession } from './writerProtocol.ts';

/** Held-back changes at most: applied in one call, which must block Redis no longer than one merge step. */
const HELD_BACK_CHANGES = 256;

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
  /** Flattened like a stagePut batch: field, bytes, one score per index. */
  readonly puts: RedisArgument[];
  putCount: number;
  bytes: number;
}

/** What a {@link ScratchSession} uses of its {@link RedisStorageTable}. */
export interface ScratchSessionHost<R> {
  readonly session: WriterSession;
  readonly batches: RecordBatches<R>;
  /** Staged changes a merge applies per script call. */
  readonly mergeBatchSize: number;
  readonly logger: Logger;
  /** The generation the writer writes; null after `clear()` until the first write. */
  generation(): number | null;
  /** The generation readers read. */
  liveGeneration(): number | null;
  /** The writer's generation, started when there is none. */
  ensureGeneration(): Promise<number>;
}

/**
 * The scratch space of a {@link RedisStorageTable}: changes staged in a
 * session in Redis (or, while small, held back in memory) that readers see
 * only when {@link merge} publishes them in one atomic step, and the
 * settling of a merge that was cut off. The table runs one session at a
 * time and checks the lease before each call.
 */
export class ScratchSession<R> {
  private staging: Staging | null = null;
  /** Scratch changes not sent yet; while set, `staging` is null. */
  private heldBack: HeldBackChanges | null = null;
  /** The running allocation of a session in Redis, while one runs. */
  private stagingAllocation: Promise<Staging> | null = null;

  constructor(private readonly host: ScratchSessionHost<R>) {}

  /** Whether changes are staged in Redis (direct writes must wait for the merge). */
  get staged(): boolean {
    return this.staging !== null;
  }

  /**
   * Forgets the session for `clear()`, returning its key group to drop.
   * Changes held back in memory go too: kept, the first merge into the next
   * generation would apply them, publishing changes of an older snapshot
   * (or of a failed step) with that merge.
   */
  takeForClear(): KeyGroup[] {
    const staging = this.staging;
    this.staging = null;
    this.heldBack = null;
    return staging === null ? [] : [{ staging: staging.id }];
  }

  /** The key group `close()` drops: none while a cut-off merge may be what readers see (the next writer finishes it). */
  groupsToDropOnClose(): KeyGroup[] {
    return this.staging !== null && !this.staging.merging ? [{ staging: this.staging.id }] : [];
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
  async settleInterruptedMerge(): Promise<void> {
    const staging = this.staging;
    const generation = this.host.generation();
    if (staging === null || !staging.merging || generation === null) return;
    const { keys } = this.host.session;
    const { overlaid, listed } = await readMergeProgress(this.host.session.redis, keys, staging.id).catch((error: unknown) => {
      throw toTablecacheError(error, `checking an interrupted merge of table "${keys.table}"`);
    });
    const live = generation === this.host.liveGeneration();
    if (listed && live && !overlaid) {
      staging.merging = false;
      return;
    }
    if (listed) {
      this.host.logger.warn({ table: keys.table, staging: staging.id }, 'finishing a merge that was cut off');
      await this.mergeRest(generation, staging.id, live);
    }
    this.staging = null;
  }

  /** Stages records (held back in memory while the session is small). */
  put(records: AsyncIterable<R> | Iterable<R>): Promise<number> {
    // Every batch waits for the same promise, so held-back changes reach Redis before any batch after them.
    let staged: Promise<Staging> | null = null;
    return this.host.batches.writeInBatches(records, async (batch) => {
      if (staged === null && batch.last && this.canHoldBack(batch.count, batch.bytes)) {
        this.holdBackPuts(batch);
        return;
      }
      staged ??= this.stageHeldBack();
      const staging = await staged;
      // Set before the call: a script that fails half way may have staged some puts.
      staging.putsStaged = true;
      // Read the delta after the await: `delta += await …` would add to the value from before it and lose the other batches' shares.
      const delta = await stagePut(this.host.session, { generation: this.host.generation()!, staging: staging.id, records: batch });
      staging.delta += delta;
    });
  }

  /**
   * Stages the deletion of the records of `generation` the spec selects and
   * yields them; also withdraws staged puts the spec selects (so that
   * staging behaves like applying the calls in order).
   */
  async *discard(generation: number, spec: StorageRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    const { keys } = this.host.session;
    // Held-back puts the spec selects must be withdrawn, which works on staged ones.
    if ((this.heldBack?.putCount ?? 0) > 0) await this.stageHeldBack();
    for await (const page of this.host.batches.pages(keys.index(generation, spec.indexName), keys.records(generation), spec.scoreIntervals)) {
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
   * Stages the deletion of the generation's records with these primary-key
   * fields without reading them (a field without a record is ignored), and
   * withdraws staged puts of them, as {@link discard} does for a spec of
   * exactly these keys. While the session is small it stays in memory and
   * this costs no round trip: the merge's applyChanges.lua deletes by field.
   */
  async discardFields(fields: readonly string[]): Promise<void> {
    if (fields.length === 0) return;
    // Held back, deletions are applied before puts: a deletion after a put must be staged in Redis, in call order.
    if ((this.heldBack?.putCount ?? 0) > 0) await this.stageHeldBack();
    if (this.canHoldBack(fields.length, 0)) {
      this.holdBack().deletions.push(...fields);
      return;
    }
    const staging = await this.stageHeldBack();
    // Bounded like a merge step, so that no one call blocks Redis longer.
    for (let start = 0; start < fields.length; start += this.host.mergeBatchSize) {
      const part = fields.slice(start, start + this.host.mergeBatchSize);
      // Withdrawn first: stageDiscard.lua's "live" mode leaves a key alone while a put of it is staged.
      if (staging.putsStaged) await this.stageDiscard('staged', part);
      await this.stageDiscard('live', part);
    }
  }

  /**
   * Publishes every staged change of the session to `generation` (null:
   * there is nothing to publish to), and the coverage update if given, in
   * one atomic step for readers.
   */
  async merge(generation: number | null, update: CoverageUpdate | undefined): Promise<void> {
    if (generation === null) {
      this.staging = null;
      return;
    }
    const staging = this.staging;
    const coverage = update === undefined ? '' : encodeCoverage(update.coverage);
    const live = generation === this.host.liveGeneration();
    if (this.heldBack !== null) return this.applyHeldBack(generation, live, coverage);
    if (staging) staging.merging = true;
    const first = { generation, staging: staging?.id ?? 0, budget: this.host.mergeBatchSize, first: true, live, delta: staging?.delta ?? 0, coverage };
    if ((await mergeStep(this.host.session, first)) > 0) await this.mergeRest(generation, staging!.id, live);
    this.staging = null;
  }

  /** Drops everything staged since the last merge; returns the key group to drop (readers never saw any of it). */
  async reset(): Promise<KeyGroup[]> {
    this.heldBack = null;
    await this.settleInterruptedMerge();
    const staging = this.staging;
    this.staging = null;
    return staging === null ? [] : [{ staging: staging.id }];
  }

  /** The merge steps after the first, until nothing staged remains. */
  private async mergeRest(generation: number, staging: number, live: boolean): Promise<void> {
    const step = { generation, staging, budget: this.host.mergeBatchSize, first: false, live, delta: 0, coverage: '' };
    while ((await mergeStep(this.host.session, step)) > 0);
  }

  private async withdrawStagedPuts(spec: StorageRecordsSpec<R>): Promise<void> {
    const staging = this.staging;
    if (staging === null || !staging.putsStaged) return;
    const { keys } = this.host.session;
    let withdrawn = new Set<PageRecord<R>>();
    const remaining = (entries: readonly PageRecord<R>[]) => entries.filter((entry) => !withdrawn.has(entry)).length;
    const index = keys.stagedIndex(staging.id, spec.indexName);
    for await (const page of this.host.batches.pages(index, keys.stagedRecords(staging.id), spec.scoreIntervals, remaining)) {
      withdrawn = new Set(page.filter(({ record }) => spec.accepts(record)));
      if (withdrawn.size > 0) await this.stageDiscard('staged', [...withdrawn].map(({ field }) => field));
    }
  }

  private async stageDiscard(mode: 'live' | 'staged', fields: readonly string[]): Promise<void> {
    const staging = await this.ensureStaging();
    const delta = await stageDiscard(this.host.session, { generation: this.host.generation()!, staging: staging.id, mode, fields });
    staging.delta += delta;
  }

  /** Whether `changes` more changes (of `bytes` encoded bytes) may stay in memory instead of being staged in Redis. */
  private canHoldBack(changes: number, bytes: number): boolean {
    if (this.host.generation() === null || this.staging !== null || this.stagingAllocation !== null) return false;
    const held = this.heldBack;
    const heldChanges = (held?.deletions.length ?? 0) + (held?.putCount ?? 0);
    // Applied in one call, so no more than one merge step may apply.
    const limit = Math.min(HELD_BACK_CHANGES, this.host.mergeBatchSize);
    return heldChanges + changes <= limit && (held?.bytes ?? 0) + bytes <= MAX_BATCH_BYTES;
  }

  private holdBack(): HeldBackChanges {
    this.heldBack ??= { deletions: [], puts: [], putCount: 0, bytes: 0 };
    return this.heldBack;
  }

  private holdBackPuts(batch: EncodedBatch): void {
    const held = this.holdBack();
    for (const value of batch.values) held.puts.push(value);
    held.putCount += batch.count;
    held.bytes += batch.bytes;
  }

  /** Moves held-back changes into a session in Redis (the session outgrew memory, or staged puts must be withdrawn); returns the session. */
  private async stageHeldBack(): Promise<Staging> {
    const held = this.heldBack;
    this.heldBack = null;
    if (held !== null && held.deletions.length > 0) await this.stageDiscard('live', held.deletions);
    const staging = await this.ensureStaging();
    if (held === null || held.putCount === 0) return staging;
    staging.putsStaged = true;
    const delta = await stagePut(this.host.session, { generation: this.host.generation()!, staging: staging.id, records: { count: held.putCount, values: held.puts } });
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
    await applyChanges(this.host.session, { generation, live, coverage, deletions: held.deletions, puts: { count: held.putCount, values: held.puts } });
    this.heldBack = null;
  }

  /** The session in Redis, allocated on first use; concurrent callers share one allocation. */
  private ensureStaging(): Promise<Staging> {
    if (this.staging !== null) return Promise.resolve(this.staging);
    this.stagingAllocation ??= this.allocateStaging().finally(() => {
      this.stagingAllocation = null;
    });
    return this.stagingAllocation;
  }

  private async allocateStaging(): Promise<Staging> {
    await this.host.ensureGeneration();
    const id = await allocateKeyGroup(this.host.session, 'staging');
    this.staging = { id, delta: 0, merging: false, putsStaged: false };
    return this.staging;
  }
}
