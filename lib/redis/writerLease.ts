import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { ScriptConnection } from './luaScript.ts';
import type { Logger } from '../core/logger.ts';
import type { TableKeys } from './keyLayout.ts';
import { LeaseHeldError, LeaseLostError } from './redisErrors.ts';
import { leaseAcquire, leaseRelease, leaseRenew } from './writerProtocol.ts';
import { abortableDelay } from '../core/abortableDelay.ts';

/** Options of {@link WriterLease.acquire}. */
export interface WriterLeaseOptions {
  /** How long the lease lasts without renewal; renewed every third of it. */
  readonly ttlMs: number;
  /** Wait until the lease is free instead of failing with {@link LeaseHeldError}. */
  readonly standby: boolean;
  /** Stops a standby wait; the wait then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  readonly logger: Logger;
  /** Called once when the lease is found lost: taken by another writer, or gone with the table's keys (`error.dataLost`). */
  readonly onLost: (error: LeaseLostError) => void;
}

/**
 * The one-writer-per-table lease: `SET lease <writer id> NX PX ttl`, renewed
 * by a compare-and-set script, plus a fence token drawn at acquisition that
 * every write script compares, so a writer that lost its lease cannot write
 * even before it notices.
 */
export class WriterLease {
  private renewTimer: NodeJS.Timeout | undefined;
  private lostError: LeaseLostError | undefined;

  private constructor(
    private readonly redis: ScriptConnection,
    private readonly keys: TableKeys,
    /** Identifies this writer in the lease and in the table's metadata. */
    readonly writerId: string,
    /** The fence token every write script of this writer passes. */
    readonly fence: string,
    private readonly options: WriterLeaseOptions,
  ) {}

  /**
   * Takes the lease, waiting for it with `standby`.
   *
   * @throws {@link LeaseHeldError} when another writer holds it and `standby` is false.
   */
  static async acquire(redis: ScriptConnection, keys: TableKeys, options: WriterLeaseOptions): Promise<WriterLease> {
    const writerId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    for (;;) {
      options.signal?.throwIfAborted();
      const reply = await leaseAcquire(redis, keys, { writerId, ttlMs: options.ttlMs });
      if (reply.taken) {
        const lease = new WriterLease(redis, keys, writerId, reply.fence, options);
        lease.scheduleRenewal();
        options.logger.info({ table: keys.table, writer: writerId, fence: lease.fence }, 'writer lease taken');
        return lease;
      }
      const { holder, remainingMs } = reply;
      if (!options.standby) throw new LeaseHeldError(keys.table, holder, remainingMs);
      options.logger.info({ table: keys.table, holder, remainingMs }, 'waiting as standby for the writer lease');
      await abortableDelay(Math.min(Math.max(remainingMs, 10), Math.ceil(options.ttlMs / 3)), options.signal);
    }
  }

  /** Throws the {@link LeaseLostError} once a renewal found the lease taken. */
  assertHeld(): void {
    if (this.lostError) throw this.lostError;
  }

  /**
   * Records that the lease is lost: a write script refused this writer's
   * fence token (`detail` from the script), or a renewal found it gone.
   * `dataLost`: the fence token is gone too, so Redis lost the table's
   * metadata (eviction, flush, restart); no other writer took over.
   */
  markLost(detail: string, dataLost: boolean): LeaseLostError {
    if (!this.lostError) {
      this.lostError = new LeaseLostError(this.keys.table, dataLost ? 'the lease key and the table metadata are gone' : detail, dataLost);
      this.stopRenewal();
      this.options.logger.error({ table: this.keys.table, writer: this.writerId }, this.lostError.message);
      this.options.onLost(this.lostError);
    }
    return this.lostError;
  }

  /**
   * Gives the lease up now and refuses every later write (a {@link LeaseLostError}),
   * without waiting for anything of this writer: for a writer whose step may
   * still be in flight. Not reported through `onLost`: it is no loss.
   */
  async giveUp(): Promise<void> {
    this.stopRenewal();
    const held = this.lostError === undefined;
    this.lostError ??= new LeaseLostError(this.keys.table, 'this writer gave it up');
    if (held) await leaseRelease(this.redis, this.keys, { writerId: this.writerId });
  }

  /** Stops renewing and gives the lease up if still held. */
  async release(): Promise<void> {
    this.stopRenewal();
    if (this.lostError) return;
    await leaseRelease(this.redis, this.keys, { writerId: this.writerId });
  }

  private scheduleRenewal(): void {
    this.renewTimer = setTimeout(() => void this.renew(), Math.ceil(this.options.ttlMs / 3));
    // The lease must not keep a process alive that has nothing else to do.
    this.renewTimer.unref();
  }

  private stopRenewal(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  private async renew(): Promise<void> {
    try {
      const held = await leaseRenew(this.redis, this.keys, { writerId: this.writerId, ttlMs: this.options.ttlMs, fence: this.fence });
      if (held === 'gone') {
        this.markLost('the lease key and the table metadata are gone', true);
        return;
      }
      if (held === 'taken') {
        this.markLost('another writer took it after it expired', false);
        return;
      }
    } catch (error) {
      // A failed renewal is retried; if the lease lapses meanwhile and
      // another writer takes it, the fence token stops this one's writes.
      this.options.logger.warn({ table: this.keys.table, err: error }, 'writer lease renewal failed; retrying');
    }
    if (!this.lostError && this.renewTimer !== undefined) this.scheduleRenewal();
  }
}
