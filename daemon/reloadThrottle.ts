import { performance } from 'node:perf_hooks';
import type { ReloadKind } from './daemonEvents.ts';

/** The most distinct reasons a deferred reload keeps for its log line and readiness. */
const MAX_REASONS = 5;

/** A reload held back until its table's interval is over. */
export interface DeferredReload {
  readonly reasons: Set<string>;
  readonly kinds: Set<ReloadKind>;
}

/** A barrier that waits for the deferred reloads pending when it arrived. */
interface HeldBarrier {
  readonly id: string;
  waitingOn: number;
}

interface Deferral extends DeferredReload {
  timer: NodeJS.Timeout;
  readonly barriers: HeldBarrier[];
  /** The {@link ReloadThrottle.requestMark} of the last request that joined it: a reload whose step was taken before it does not cover it. */
  askedMark: number;
}

/** Options of a {@link ReloadThrottle}. */
export interface ReloadThrottleOptions {
  /** Least time between the starts of two throttled reloads of one table; 0 turns the throttle off. */
  readonly minIntervalMs: number;
  /**
   * A deferred reload is due: the caller queues it, with the barriers that
   * waited for it (and for no other deferred reload), in one batch.
   */
  readonly onDue: (table: string, reload: DeferredReload, barriers: readonly string[]) => void;
  /** Whether a reload of the table is queued and no step took it yet: a request now joins it. */
  readonly queued: (table: string) => boolean;
}

/**
 * Coalesces the reloads a notification can ask for (a coarse or truncate
 * payload, an unknown version, keys that do not map, a key flood: anyone who
 * can NOTIFY on the channel can ask for them with a few bytes) into at most one per
 * table per interval (issue #18: 50 forged `{"v":2}` payloads a second
 * reloaded a 200,000-row table back to back). A reload asked for within the
 * interval after the table's last reload started is deferred, never dropped:
 * it runs once the interval is over, and every further request meanwhile
 * joins it. The pipeline holds the table at its last step meanwhile (a
 * refresh by key could publish part of a transaction the deferred reload
 * stands for); the deferred reload covers whatever the coarse requests stood
 * for.
 *
 * The interval is counted from a reload's start, but a reload is admitted
 * before it starts: it waits in the queue, then in a step that opens its
 * snapshot (behind a slow refresh, when the step was opened early). A request
 * meanwhile joins it while it is queued; once a step took it, the request is
 * deferred to one interval after that reload's start (that reload's snapshot
 * may not cover it: a step reads {@link ReloadThrottle.requestMark} before
 * opening its snapshot, and a start covers only the requests up to it). Before, such a request was admitted too, and two reloads
 * ran back to back: 11 in a window that allows 10 (hostileNotifications).
 *
 * Barriers keep their meaning (everything committed before is visible): a
 * barrier that arrives while reloads are deferred is held until every one of
 * them has started and the batch holding the last one is applied.
 */
export class ReloadThrottle {
  private readonly lastStartedAt = new Map<string, number>();
  private readonly deferrals = new Map<string, Deferral>();
  /** Tables with a reload admitted (or due) that has not started yet. */
  private readonly admitted = new Set<string>();
  private requests = 0;

  constructor(private readonly options: ReloadThrottleOptions) {}

  /**
   * Whether a throttled reload of `table` may be queued now (`true`), or was
   * deferred (`false`: it is due later, through `onDue`).
   */
  admit(table: string, reason: string, kind: ReloadKind): boolean {
    this.requests++;
    const pending = this.deferrals.get(table);
    if (pending !== undefined) {
      // A flood of distinct (forged) reasons must not grow without bound: the first few tell the story.
      if (pending.reasons.size < MAX_REASONS) pending.reasons.add(reason);
      pending.kinds.add(kind);
      pending.askedMark = this.requests;
      return false;
    }
    if (this.options.minIntervalMs <= 0) return true;
    if (this.admitted.has(table)) {
      if (this.options.queued(table)) return true;
      this.defer(table, reason, kind, this.options.minIntervalMs);
      return false;
    }
    const last = this.lastStartedAt.get(table);
    const waitMs = last === undefined ? 0 : last + this.options.minIntervalMs - performance.now();
    if (waitMs <= 0) {
      this.admitted.add(table);
      return true;
    }
    this.defer(table, reason, kind, waitMs);
    return false;
  }

  /**
   * How many reloads were asked for so far: a step reads it before opening
   * its snapshot, and passes it to {@link reloadStarted}.
   */
  get requestMark(): number {
    return this.requests;
  }

  /**
   * A reload of `table` starts now (whatever its reason), in a step taken
   * from the queue at request mark `stepMark` ({@link requestMark}, read
   * before its snapshot was opened): it covers a deferred reload asked for
   * before then, which is dropped. One asked for later (after the step took
   * an admitted reload, or a key flood while a recovery reload's snapshot
   * was open) may stand for changes committed after that snapshot: it
   * stays, due one interval after this start. Returns the
   * barriers that waited for nothing else: they may be marked once this
   * reload is applied.
   */
  reloadStarted(table: string, stepMark: number): string[] {
    this.lastStartedAt.set(table, performance.now());
    this.admitted.delete(table);
    const deferral = this.deferrals.get(table);
    if (deferral === undefined) return [];
    clearTimeout(deferral.timer);
    if (deferral.askedMark > stepMark) {
      // Not covered by this start: due one interval after it, with its barriers.
      deferral.timer = this.timer(table, this.options.minIntervalMs);
      return [];
    }
    this.deferrals.delete(table);
    return freed(deferral.barriers);
  }

  /** Holds a barrier while reloads are deferred (`true`); `false` when none is and it may be marked as usual. */
  holdBarrier(id: string): boolean {
    if (this.deferrals.size === 0) return false;
    const barrier: HeldBarrier = { id, waitingOn: this.deferrals.size };
    for (const deferral of this.deferrals.values()) deferral.barriers.push(barrier);
    return true;
  }

  /** The deferred reloads, per table. */
  deferred(): ReadonlyMap<string, DeferredReload> {
    return this.deferrals;
  }

  /** Cancels every timer (the daemon stops; the next start reloads everything). */
  close(): void {
    for (const deferral of this.deferrals.values()) clearTimeout(deferral.timer);
    this.deferrals.clear();
    this.admitted.clear();
  }

  private defer(table: string, reason: string, kind: ReloadKind, waitMs: number): void {
    this.deferrals.set(table, { reasons: new Set([reason]), kinds: new Set([kind]), timer: this.timer(table, waitMs), barriers: [], askedMark: this.requests });
  }

  private timer(table: string, waitMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.release(table), waitMs);
    timer.unref();
    return timer;
  }

  private release(table: string): void {
    const deferral = this.deferrals.get(table);
    if (deferral === undefined) return;
    this.deferrals.delete(table);
    // Queued by onDue: admitted, until it starts.
    this.admitted.add(table);
    this.options.onDue(table, deferral, freed(deferral.barriers));
  }
}

/** The ids of the barriers that, with this deferral gone, wait for no other. */
function freed(barriers: readonly HeldBarrier[]): string[] {
  const ids: string[] = [];
  for (const barrier of barriers) if (--barrier.waitingOn === 0) ids.push(barrier.id);
  return ids;
}
