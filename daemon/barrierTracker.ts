import type { Cluster, Redis } from 'ioredis';
import { BARRIER_MARK_TTL_MS, barrierBehindKey, barrierMarkKey, tableBarrierMarkKey, type BarrierBehindTable } from '../lib/client/barrier.ts';

/** Options of a {@link BarrierTracker}. */
export interface BarrierTrackerOptions {
  /** Every cached table: a barrier waits for each of them. */
  readonly tables: readonly string[];
  /** Where barrier marks are written; absent when no reader can wait on them (in-process storage). */
  readonly redis?: Pick<Redis | Cluster, 'pipeline'> | undefined;
  readonly keyPrefix: string;
  /** The hash tags of tables placed with one: a table's marks live in its own slot. */
  readonly hashTags?: ReadonlyMap<string, string> | undefined;
  /** A write to Redis failed (it is retried with the next report). */
  readonly onError: (error: unknown, during: string) => void;
  /**
   * Replicas that must acknowledge a table's barrier marks (`WAIT`, at most
   * `timeoutMs`) before the barrier's all-tables mark may be set, so that a
   * reader that waited for it on the primary reads the change on those
   * replicas too. Use a connection of its own: `WAIT` holds it meanwhile.
   */
  readonly waitReplicas?: { readonly replicas: number; readonly timeoutMs: number } | undefined;
  /** Fewer replicas than `waitReplicas` acknowledged within its timeout (the barrier is marked anyway). */
  readonly onReplicasBehind?: (detail: string) => void;
}

/** The longest reason written per table into a barrier's "behind" key. */
const MAX_REASON_CHARS = 300;

/**
 * Barriers across tables that step on their own. A barrier means
 * "everything committed before it is visible in every table", so it is
 * marked once every table has applied a step whose snapshot was opened
 * after the barrier arrived ({@link reached}), whatever order the tables
 * get there in.
 *
 * Each table also gets a mark of its own as soon as it has applied the
 * barrier, in its own slot, for readers that wait on the replica they read
 * (`waitForBarrier(reader, id)`).
 *
 * While a barrier waits, the tables it waits for are written beside its mark
 * (`{<keyPrefix>}barrier-behind:<id>`, a JSON list of `{ table, reason }`)
 * whenever that list changes because a table got there or failed a step:
 * a `waitForBarrier` that times out names them.
 */
export class BarrierTracker {
  /** Per barrier id, in arrival order: the tables it still waits for. */
  private readonly pending = new Map<string, Set<string>>();
  /** Why a table is behind, while its last step failed. */
  private readonly failures = new Map<string, string>();
  /** Barriers whose mark could not be written; retried with the next write. */
  private unmarked: string[] = [];
  /** Per table, barriers whose table mark could not be written; retried with the table's next marks. */
  private readonly unmarkedTables = new Map<string, string[]>();

  constructor(private readonly options: BarrierTrackerOptions) {}

  /** A barrier arrived; every table must reach it. Call before handing it to the tables. */
  arrive(id: string): void {
    if (this.options.redis === undefined) return;
    this.pending.set(id, new Set(this.options.tables));
  }

  /** The tables barrier `id` still waits for (empty when it is marked, or unknown). */
  waitingOn(id: string): string[] {
    return [...(this.pending.get(id) ?? [])];
  }

  /**
   * `table` applied a step whose snapshot was opened after barriers `ids`
   * arrived: marks those that now wait for no table, and rewrites the list
   * of tables the others wait for.
   */
  async reached(table: string, ids: readonly string[]): Promise<void> {
    this.failures.delete(table);
    if (this.options.redis === undefined) return;
    const complete: string[] = [];
    const stillWaiting: string[] = [];
    const reachedHere: string[] = [];
    for (const id of ids) {
      const tables = this.pending.get(id);
      if (tables === undefined || !tables.delete(table)) continue;
      reachedHere.push(id);
      if (tables.size === 0) {
        this.pending.delete(id);
        complete.push(id);
      } else {
        stillWaiting.push(id);
      }
    }
    // In this order: with waitReplicas, a table's marks reach its replicas before the all-tables mark is set.
    await this.markTable(table, reachedHere);
    await this.write(complete, stillWaiting);
  }

  /**
   * Marks barriers `ids` reached for `table` in the table's own slot
   * (`tableBarrierMarkKey`), where readers of replicas wait: the mark
   * replicates behind the step that applied them. One pipeline per table:
   * a Cluster pipeline must stay on one node. Marks that could not be
   * written are retried with the table's next ones.
   */
  private async markTable(table: string, reachedNow: readonly string[]): Promise<void> {
    const ids = [...(this.unmarkedTables.get(table) ?? []), ...reachedNow];
    if (ids.length === 0) return;
    this.unmarkedTables.delete(table);
    const pipeline = this.options.redis!.pipeline();
    for (const id of ids) pipeline.set(tableBarrierMarkKey(this.options.keyPrefix, table, id, this.options.hashTags?.get(table)), '1', 'PX', BARRIER_MARK_TTL_MS);
    const wait = this.options.waitReplicas;
    // WAIT counts the replicas that have this connection's last write, the marks: they follow the step that applied the barrier.
    if (wait !== undefined) pipeline.call('wait', wait.replicas, wait.timeoutMs);
    try {
      const replies = (await pipeline.exec()) ?? [];
      const failure = replies.find(([error]) => error !== null);
      if (failure) throw failure[0];
      const acknowledged = Number(replies.at(-1)?.[1]);
      if (wait !== undefined && acknowledged < wait.replicas) {
        this.options.onReplicasBehind?.(
          `${acknowledged} of ${wait.replicas} replicas acknowledged table ${table}'s barrier marks within ${wait.timeoutMs} ms; marked anyway (readers of lagging replicas: waitForBarrier(reader, id))`,
        );
      }
    } catch (error) {
      this.unmarkedTables.set(table, ids);
      this.options.onError(error, `marking barriers of table ${table}`);
    }
  }

  /** A step of `table` failed: the barriers waiting for it say so (and why) beside their marks. */
  async failed(table: string, reason: string): Promise<void> {
    this.failures.set(table, reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS)}…` : reason);
    if (this.options.redis === undefined) return;
    const waiting = [...this.pending].filter(([, tables]) => tables.has(table)).map(([id]) => id);
    await this.write([], waiting);
  }

  /** Forgets every pending barrier (the daemon stops: waiters time out). */
  clear(): void {
    this.pending.clear();
    this.unmarked = [];
    this.unmarkedTables.clear();
  }

  private async write(complete: readonly string[], waiting: readonly string[]): Promise<void> {
    const marks = [...this.unmarked, ...complete];
    if (marks.length === 0 && waiting.length === 0) return;
    this.unmarked = [];
    const pipeline = this.options.redis!.pipeline();
    for (const id of marks) pipeline.set(barrierMarkKey(this.options.keyPrefix, id), '1', 'PX', BARRIER_MARK_TTL_MS);
    for (const id of waiting) {
      const behind: BarrierBehindTable[] = [...(this.pending.get(id) ?? [])].map((table) => {
        const reason = this.failures.get(table);
        return reason === undefined ? { table } : { table, reason };
      });
      pipeline.set(barrierBehindKey(this.options.keyPrefix, id), JSON.stringify(behind), 'PX', BARRIER_MARK_TTL_MS);
    }
    try {
      const replies = (await pipeline.exec()) ?? [];
      const failure = replies.find(([error]) => error !== null);
      if (failure) throw failure[0];
    } catch (error) {
      this.unmarked.unshift(...marks);
      this.options.onError(error, 'marking barriers');
    }
  }
}
