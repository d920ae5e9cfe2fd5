import type { PrimaryKey } from '../lib/core/storageTable.ts';
import type { SourceConfig } from './config/configSchema.ts';
import type { ReloadKind } from './daemonEvents.ts';

/**
 * What one batch asks of one cached table: a reload, or the keys of the
 * records to refresh per index (deduplicated by canonical key, so a key
 * changed five times is refreshed once) and the changed source keys still to
 * be resolved to primary keys by `resolve` queries.
 */
export class TableChanges {
  private readonly reasons = new Set<string>();
  private readonly kinds = new Set<ReloadKind>();
  private readonly keys = new Map<string, Map<PrimaryKey, readonly unknown[]>>();
  private readonly sourceKeys = new Map<SourceConfig, Map<string, readonly unknown[]>>();

  /** Why the table must be reloaded; empty when a refresh of the keys below is enough. */
  get reloadReasons(): ReadonlySet<string> {
    return this.reasons;
  }

  /** The same reasons as a fixed set, for metrics. */
  get reloadKinds(): ReadonlySet<ReloadKind> {
    return this.kinds;
  }

  /** Per index name: canonical key → the key's values (one per column of the index). */
  get keysByIndex(): ReadonlyMap<string, ReadonlyMap<PrimaryKey, readonly unknown[]>> {
    return this.keys;
  }

  /** Per source with a `resolve` query: the changed source keys (by their JSON text). */
  get resolveKeys(): ReadonlyMap<SourceConfig, ReadonlyMap<string, readonly unknown[]>> {
    return this.sourceKeys;
  }

  /** Whether the table is reloaded (its keys are then not kept). */
  get needsReload(): boolean {
    return this.reasons.size > 0;
  }

  /** Whether there is nothing to do. */
  get isEmpty(): boolean {
    return !this.needsReload && this.keys.size === 0 && this.sourceKeys.size === 0;
  }

  /** Distinct keys to refresh or resolve. */
  get keyCount(): number {
    let count = 0;
    for (const keys of this.keys.values()) count += keys.size;
    for (const keys of this.sourceKeys.values()) count += keys.size;
    return count;
  }

  /** Adds a key of index `indexName` to refresh (unless the table reloads). */
  addKey(indexName: string, key: PrimaryKey, values: readonly unknown[]): void {
    if (this.needsReload) return;
    let keys = this.keys.get(indexName);
    if (keys === undefined) this.keys.set(indexName, (keys = new Map()));
    keys.set(key, values);
  }

  /** Adds a changed key of `source` for its `resolve` query (unless the table reloads). */
  addResolveKey(source: SourceConfig, values: readonly unknown[]): void {
    if (this.needsReload) return;
    let keys = this.sourceKeys.get(source);
    if (keys === undefined) this.sourceKeys.set(source, (keys = new Map()));
    keys.set(JSON.stringify(values), values);
  }

  /** A reload reads every record, so the keys gathered so far (and any added later to this batch) need no refresh. */
  requestReload(reason: string, kind: ReloadKind): void {
    this.requestReloads([reason], [kind]);
  }

  /** Like {@link requestReload}, for several reasons at once (their kinds need not pair up with them). */
  requestReloads(reasons: Iterable<string>, kinds: Iterable<ReloadKind>): void {
    for (const reason of reasons) this.reasons.add(reason);
    for (const kind of kinds) this.kinds.add(kind);
    this.keys.clear();
    this.sourceKeys.clear();
  }
}

/**
 * What one pipeline step applies: per cached table what to refresh or
 * reload, and the barriers to mark once all of it is applied. Adding a key to
 * a table that reloads in this batch is a no-op: the reload reads the same
 * snapshot as the key's refresh would.
 */
export class ChangeBatch {
  private readonly tables = new Map<string, TableChanges>();
  private readonly barrierIds: string[] = [];
  private notificationCount = 0;
  private receivedKeyCount = 0;
  private readonly triggerTimes: number[] = [];
  private oldestArrival: number | null = null;

  /**
   * @param startedAt When the first item arrived (ms, `performance.now()`), for latency metrics.
   */
  constructor(readonly startedAt: number = performance.now()) {}

  /** Barrier ids, in arrival order. */
  get barriers(): readonly string[] {
    return this.barrierIds;
  }

  /** Change notifications this batch applies (key by key, or by the reload one asked for). */
  get notifications(): number {
    return this.notificationCount;
  }

  /** Keys carried by those notifications, before deduplication: what `maxBatchKeys` bounds. */
  get receivedKeys(): number {
    return this.receivedKeyCount;
  }

  /**
   * The trigger time (`ts`) of every change this batch makes visible, in
   * arrival order: its notifications, and the changes dropped from the queue
   * that its reload covers. For the lag histogram.
   */
  get changeTimes(): readonly number[] {
    return this.triggerTimes;
  }

  /**
   * When the oldest change this batch makes visible arrived
   * (`performance.now()` ms), for the pending-change gauge; `null`: none.
   */
  get oldestChangeArrivedAt(): number | null {
    return this.oldestArrival;
  }

  /** Counts a change notification this batch applies: triggered at `triggerTime` (epoch ms), arrived at `arrivedAt`. */
  countNotification(triggerTime: number, arrivedAt: number): void {
    this.notificationCount++;
    this.triggerTimes.push(triggerTime);
    this.countArrival(arrivedAt);
  }

  /**
   * Counts changes that were dropped from the queue (replaced by a reload
   * that this batch, reading a later snapshot, applies): not notifications of
   * this batch, but it is what makes them visible, so their lag ends here.
   */
  countDroppedChanges(triggerTimes: readonly number[], oldestArrivedAt: number | null): void {
    for (const time of triggerTimes) this.triggerTimes.push(time);
    this.countArrival(oldestArrivedAt);
  }

  /** Counts keys a notification carried (before deduplication). */
  countReceivedKeys(keys: number): void {
    this.receivedKeyCount += keys;
  }

  /** Adds barriers, after those added before. */
  addBarriers(ids: Iterable<string>): void {
    for (const id of ids) this.barrierIds.push(id);
  }

  /** The changes of `table`, created on first use. */
  table(table: string): TableChanges {
    let changes = this.tables.get(table);
    if (changes === undefined) this.tables.set(table, (changes = new TableChanges()));
    return changes;
  }

  /** Tables with something to do, in first-touched order. */
  entries(): [string, TableChanges][] {
    return [...this.tables].filter(([, changes]) => !changes.isEmpty);
  }

  /** Whether the batch holds nothing: no change, no reload, no barrier. */
  get isEmpty(): boolean {
    return this.barrierIds.length === 0 && this.entries().length === 0;
  }

  /** Drops everything this batch asks of `table` (a reload that starts later covers it). */
  forget(table: string): void {
    this.tables.delete(table);
  }

  /** Adds the reloads `other` asks for (a batch of reload requests only: its keys, barriers and counts are not taken). */
  addReloadsOf(other: ChangeBatch): void {
    for (const [name, changes] of other.entries()) {
      if (changes.needsReload) this.table(name).requestReloads(changes.reloadReasons, changes.reloadKinds);
    }
  }

  private countArrival(arrivedAt: number | null): void {
    if (arrivedAt !== null) this.oldestArrival = Math.min(this.oldestArrival ?? arrivedAt, arrivedAt);
  }
}
