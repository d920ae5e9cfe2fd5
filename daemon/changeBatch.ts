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
  /** Why the table must be reloaded; empty when a refresh of the keys below is enough. */
  readonly reloadReasons = new Set<string>();
  /** The same reasons as a fixed set, for metrics. */
  readonly reloadKinds = new Set<ReloadKind>();
  /** Per index name: canonical key → the key's values (one per column of the index). */
  readonly keysByIndex = new Map<string, Map<PrimaryKey, readonly unknown[]>>();
  /** Per source with a `resolve` query: the changed source keys (by their JSON text). */
  readonly resolveKeys = new Map<SourceConfig, Map<string, readonly unknown[]>>();

  get needsReload(): boolean {
    return this.reloadReasons.size > 0;
  }

  /** Whether there is nothing to do. */
  get isEmpty(): boolean {
    return !this.needsReload && this.keysByIndex.size === 0 && this.resolveKeys.size === 0;
  }

  /** Distinct keys to refresh or resolve. */
  get keyCount(): number {
    let count = 0;
    for (const keys of this.keysByIndex.values()) count += keys.size;
    for (const keys of this.resolveKeys.values()) count += keys.size;
    return count;
  }

  addKey(indexName: string, key: PrimaryKey, values: readonly unknown[]): void {
    if (this.needsReload) return;
    let keys = this.keysByIndex.get(indexName);
    if (keys === undefined) this.keysByIndex.set(indexName, (keys = new Map()));
    keys.set(key, values);
  }

  addResolveKey(source: SourceConfig, values: readonly unknown[]): void {
    if (this.needsReload) return;
    let keys = this.resolveKeys.get(source);
    if (keys === undefined) this.resolveKeys.set(source, (keys = new Map()));
    keys.set(JSON.stringify(values), values);
  }

  /** A reload reads every record, so the keys gathered so far (and any added later to this batch) need no refresh. */
  requestReload(reason: string, kind: ReloadKind): void {
    this.reloadReasons.add(reason);
    this.reloadKinds.add(kind);
    this.keysByIndex.clear();
    this.resolveKeys.clear();
  }

  /** Moves everything of `other` into this one. */
  absorb(other: TableChanges): void {
    for (const reason of other.reloadReasons) this.reloadReasons.add(reason);
    for (const kind of other.reloadKinds) this.reloadKinds.add(kind);
    if (this.needsReload) {
      this.keysByIndex.clear();
      this.resolveKeys.clear();
      return;
    }
    for (const [indexName, keys] of other.keysByIndex) for (const [key, values] of keys) this.addKey(indexName, key, values);
    for (const [source, keys] of other.resolveKeys) for (const values of keys.values()) this.addResolveKey(source, values);
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
  /** Barrier ids, in arrival order. */
  readonly barriers: string[] = [];
  /** Notifications folded into this batch. */
  notifications = 0;
  /** Keys carried by those notifications, before deduplication: what `maxBatchKeys` bounds. */
  receivedKeys = 0;
  /**
   * @param startedAt When the first item arrived (ms, `performance.now()`), for latency metrics.
   */
  constructor(readonly startedAt: number = performance.now()) {}

  /** The trigger time (`ts`) of every change notification, in arrival order, for the lag metric. */
  readonly changeTimes: number[] = [];

  /** When the oldest change of this batch arrived (`performance.now()` ms), for the pending-change gauge; `null`: none. */
  oldestChangeArrivedAt: number | null = null;

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
    return this.barriers.length === 0 && this.entries().length === 0;
  }

  /** Drops everything this batch asks of `table` (a reload that starts later covers it). */
  forget(table: string): void {
    this.tables.delete(table);
  }

  /** Moves everything of `other` into this one (barriers after this one's). */
  absorb(other: ChangeBatch): void {
    for (const [table, changes] of other.tables) this.table(table).absorb(changes);
    this.barriers.push(...other.barriers);
    this.notifications += other.notifications;
    this.receivedKeys += other.receivedKeys;
    for (const time of other.changeTimes) this.changeTimes.push(time);
    if (other.oldestChangeArrivedAt !== null) this.oldestChangeArrivedAt = Math.min(this.oldestChangeArrivedAt ?? other.oldestChangeArrivedAt, other.oldestChangeArrivedAt);
  }
}
