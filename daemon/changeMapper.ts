import { canonicalKey, type KeyColumnIndexes } from '../lib/core/keyColumnIndexes.ts';
import { TablecacheError } from '../lib/core/errors.ts';
import type { ChangePayload, KeysChangedPayload, KeyTuple } from '../sql-triggers/payload.ts';
import type { ChangeBatch, TableChanges } from './changeBatch.ts';
import type { SourceConfig } from './config/configSchema.ts';
import type { ReloadKind } from './daemonEvents.ts';

/** A cached table as the mapper sees it: its Indexes and the sources whose changes affect it. */
export interface MappedTable {
  readonly name: string;
  readonly indexes: KeyColumnIndexes;
  readonly sources: readonly SourceConfig[];
}

/** What {@link ChangeMapper.map} made of a payload. */
export type MapOutcome =
  /** Keys were added to the batch (possibly none, e.g. only NULL keys). */
  | 'mapped'
  /** The payload asked for reloads (TRUNCATE, coarse change, or keys it could not map). */
  | 'reload'
  /** No cached table uses the payload's table as a source. */
  | 'unrelated';

/**
 * Where the mapper sends a reload it asks for: by default straight into the
 * batch; the pipeline passes one that coalesces them (see `ReloadThrottle`).
 */
export type ReloadSink = (table: string, reason: string, kind: ReloadKind) => void;

interface Route {
  readonly table: MappedTable;
  readonly source: SourceConfig;
  /** The index the source's key is matched against; absent for `resolve` sources. */
  readonly indexName?: string;
}

/**
 * Turns change payloads into the work of a {@link ChangeBatch}: for every
 * cached table that uses the changed table as a source,
 *
 * - `match` (the default: the cached primary key): the changed keys become
 *   keys of the index over the match columns; the refresh then deletes what
 *   storage holds under those keys (the old relationship, still findable
 *   after the source row is gone) and loads what the database now has under
 *   them (the new relationship);
 * - `resolve`: the changed keys are kept for the table's `resolve` query,
 *   which the pipeline runs once per batch;
 * - TRUNCATE, a coarse "table changed" payload, or keys that cannot be
 *   mapped (a key column missing from the payload, a value of an unsupported
 *   type): the table is reloaded.
 *
 * An UPDATE that changed keys reports the old keys in `ok`; they are mapped
 * like the new ones. Pure: no I/O.
 */
export class ChangeMapper {
  private readonly routes = new Map<string, Route[]>();
  /** Per source table, the cached tables it feeds: asked for every change received. */
  private readonly tablesBySource = new Map<string, readonly string[]>();

  constructor(tables: readonly MappedTable[]) {
    for (const table of tables) {
      for (const source of table.sources) {
        const route: Route = source.match === undefined ? { table, source } : { table, source, indexName: table.indexes.indexNameFor(source.match) };
        const routes = this.routes.get(source.name) ?? [];
        routes.push(route);
        this.routes.set(source.name, routes);
      }
    }
    for (const [source, routes] of this.routes) this.tablesBySource.set(source, [...new Set(routes.map((route) => route.table.name))]);
  }

  /** The names of the cached tables that use `sourceTable` (canonical text, as in payloads) as a source. */
  tablesOf(sourceTable: string): readonly string[] {
    return this.tablesBySource.get(sourceTable) ?? [];
  }

  /** Every source table (canonical text) some cached table uses. */
  sourceTables(): string[] {
    return [...this.routes.keys()];
  }

  /**
   * Adds the payload's effect to `batch`; the reloads it asks for go to
   * `reload` (default: into `batch`). With `onlyTable`, only that cached
   * table's routes are followed.
   */
  map(payload: ChangePayload, batch: ChangeBatch, reload?: ReloadSink, onlyTable?: string): MapOutcome {
    const allRoutes = this.routes.get(payload.t);
    // A table's own step loop maps only into that table: the other tables cut the same payload in their own steps.
    const routes = onlyTable === undefined ? allRoutes : allRoutes?.filter((route) => route.table.name === onlyTable);
    if (routes === undefined || routes.length === 0) return 'unrelated';
    const sink: ReloadSink = reload ?? ((table, reason, kind) => batch.table(table).requestReload(reason, kind));
    if (payload.op === 'T' || payload.op === 'X') {
      const reason = payload.op === 'T' ? `${payload.t} was truncated` : `${payload.t} changed in bulk (${payload.reason})`;
      const kind = payload.op === 'T' ? 'truncate' : 'bulk_change';
      for (const route of routes) sink(route.table.name, reason, kind);
      return 'reload';
    }
    batch.countReceivedKeys(payload.k.length + (payload.ok?.length ?? 0));
    let outcome: MapOutcome = 'mapped';
    for (const route of routes) {
      if (!this.mapKeys(payload, route, batch, sink)) outcome = 'reload';
    }
    return outcome;
  }

  /** Maps the payload's keys for one route; `false` when it had to fall back to a reload. */
  private mapKeys(payload: KeysChangedPayload, route: Route, batch: ChangeBatch, reload: ReloadSink): boolean {
    const changes = batch.table(route.table.name);
    const positions = route.source.key.map((column) => payload.c.indexOf(column));
    const missing = route.source.key.filter((_, i) => positions[i]! < 0);
    if (missing.length > 0) {
      reload(
        route.table.name,
        `the payload of ${payload.t} lacks key column(s) ${missing.join(', ')} (it has ${payload.c.join(', ').slice(0, 200)}); run \`tablecache triggers install\``,
        'unmappable_key',
      );
      return false;
    }
    const tuples = payload.ok === undefined ? payload.k : [...payload.k, ...payload.ok];
    try {
      for (const tuple of tuples) {
        const values = positions.map((position) => tuple[position] ?? null);
        if (route.indexName === undefined) changes.addResolveKey(route.source, values);
        else this.addMatchKey(changes, route.indexName, values);
      }
    } catch (error) {
      if (!(error instanceof TablecacheError)) throw error;
      reload(route.table.name, `a key of ${payload.t} cannot be matched: ${error.message}`, 'unmappable_key');
      return false;
    }
    return true;
  }

  private addMatchKey(changes: TableChanges, indexName: string, values: KeyTuple): void {
    const key = canonicalKey(values);
    // A NULL key value matches no cached record (and a NULL primary key does not exist).
    if (key === null) return;
    changes.addKey(indexName, key, values);
  }
}
