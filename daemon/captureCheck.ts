import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../lib/core/logger.ts';
import { formatQualifiedName } from '../sql-triggers/identifiers.ts';
import { installChildTriggers } from '../sql-triggers/installTriggers.ts';
import { readLogicalCaptureGaps } from '../sql-triggers/logicalCaptureGaps.ts';
import { readTriggerStatus, type SourceTriggerStatus } from '../sql-triggers/triggerStatus.ts';
import type { TriggerSpec } from '../sql-triggers/triggerSpec.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { logicalCaptureSpecFromConfig } from './config/logicalCaptureSpecFromConfig.ts';
import { triggerSpecFromConfig } from './config/triggerSpecFromConfig.ts';
import type { CaptureProblem, DaemonEvents, ReloadKind } from './daemonEvents.ts';
import { describeShapeChange, readSourceTableShapes, type SourceTableShape } from './sourceTableShapes.ts';

/** Options of a {@link CaptureCheck}. */
export interface CaptureCheckOptions {
  readonly config: TablecacheConfig;
  /** Reads the catalog, and creates triggers on new partitions the daemon's role owns. */
  readonly pool: pg.Pool;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Receives `captureChecked` and `sourceSchemaChanged`. */
  readonly events: EventEmitter<DaemonEvents>;
  /** Reloads cached tables (the pipeline's `requestReload`). */
  readonly requestReload: (tables: readonly string[], reason: string, kind: ReloadKind) => void;
  /** Where changes come from (default `triggers`): what is checked besides the shapes. */
  readonly method?: 'triggers' | 'logical';
}

/** A source table whose changes do not reach the daemon, and why. */
interface CaptureGap {
  readonly source: string;
  readonly detail: string;
}

/**
 * Checks, at start and every `intervalMs`, that the daemon sees every change
 * of every source table, and acts when it does not:
 *
 * - **Triggers.** Each source table, and each of its partitions and
 *   inheritance children (a statement naming one fires only its own
 *   statement-level triggers), must carry current, enabled triggers. A
 *   partition or child without them gets them at once when the daemon's role
 *   owns it; otherwise the source is a {@link CaptureProblem} (the daemon is
 *   not ready) naming the `tablecache triggers install` command, and the
 *   tables reading it are reloaded once the triggers are back, since changes
 *   made meanwhile were missed.
 * - **Logical capture** (`method: logical`, instead of triggers). The
 *   publication must exist and publish every source table, and each table
 *   holding a source's rows must keep a replica identity that gives the old
 *   key values: a dropped publication, a table removed from it or an
 *   identity changed to NOTHING is a {@link CaptureProblem} naming `tablecache
 *   capture install`, and the tables reading it are reloaded once it is
 *   fixed (Postgres decodes a change with the publications of its time, so
 *   changes made meanwhile never reach the daemon).
 * - **Shape.** Each source table's OID (a DROP and CREATE), columns and
 *   types, and set of partitions and children must be what the previous
 *   check saw; when they changed, the tables reading it are reloaded (a
 *   `SELECT *` gains the new column; a detached partition's rows leave the
 *   query; a key column's new type gives new keys).
 *
 * A failed check (Postgres unreachable) is logged and tried again at the
 * next interval; what the last successful check found stays in force.
 */
export class CaptureCheck {
  private readonly spec: TriggerSpec;
  private readonly tablesBySource = new Map<string, string[]>();
  private shapes = new Map<string, SourceTableShape>();
  private current: readonly CaptureProblem[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly options: CaptureCheckOptions) {
    this.spec = triggerSpecFromConfig(options.config);
    for (const table of options.config.tables) {
      for (const source of table.sources) {
        const name = formatQualifiedName(source);
        const tables = this.tablesBySource.get(name) ?? [];
        if (!tables.includes(table.name)) tables.push(table.name);
        this.tablesBySource.set(name, tables);
      }
    }
  }

  /** Source tables whose changes are not captured, as of the last successful check. */
  problems(): readonly CaptureProblem[] {
    return this.current;
  }

  /** Runs the first check now (the baseline the later ones compare with), then every `intervalMs`. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  /** Runs one check (waiting for one in flight instead of overlapping it). */
  check(): Promise<void> {
    this.running ??= this.runCheck().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops checking; waits for a check in flight. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), this.options.intervalMs);
    this.timer.unref();
  }

  private async runCheck(): Promise<void> {
    const { logger } = this.options;
    try {
      const gaps = this.options.method === 'logical' ? await this.readLogicalGaps() : await this.readTriggerGaps();
      await this.checkShapes();
      this.updateProblems(gaps);
    } catch (error) {
      if (this.closed) return;
      logger.warn({ err: error }, 'could not check the change capture of the source tables; trying again at the next check');
    }
  }

  private async readLogicalGaps(): Promise<CaptureGap[]> {
    const bySource = new Map<string, string[]>();
    for (const gap of await readLogicalCaptureGaps(this.options.pool, logicalCaptureSpecFromConfig(this.options.config))) {
      bySource.set(gap.source, [...(bySource.get(gap.source) ?? []), gap.detail]);
    }
    return [...bySource].map(([source, details]) => ({ source, detail: details.join('; ') }));
  }

  private async readTriggerGaps(): Promise<CaptureGap[]> {
    const statuses = await this.readStatuses();
    return statuses
      .filter((status) => status.state !== 'not_in_config' && !status.capturesChanges)
      .map((status) => ({ source: status.source, detail: status.exists ? status.detail : 'the table does not exist' }));
  }

  /** Trigger status of every source; first gives triggers to new partitions and children the daemon's role owns. */
  private async readStatuses(): Promise<readonly SourceTriggerStatus[]> {
    const client = await this.options.pool.connect();
    // Checked out, a client has no pool listener: its connection cut meanwhile (Postgres restarting) is an 'error'
    // event that, unheard, ends the process. The query in flight fails anyway, and the next check tries again.
    let lost: Error | undefined;
    const onError = (error: Error) => {
      lost = error;
    };
    client.on('error', onError);
    try {
      const status = await readTriggerStatus(client, this.spec);
      const ownedWithout = status.sources.some((source) => source.children.some((child) => child.state === 'missing' && child.ownedByCurrentRole));
      if (!ownedWithout) return status.sources;
      let installed;
      try {
        installed = await installChildTriggers(client, this.spec);
      } catch (error) {
        // E.g. no USAGE on the trigger schema: the operator's install is the way, and the problem is reported below.
        this.options.logger.warn({ err: error }, 'could not create the change triggers of new partitions or child tables');
        return status.sources;
      }
      if (installed.installedTables.length > 0) {
        this.options.logger.warn({ tables: installed.installedTables }, 'created the change triggers of new partitions or child tables');
        // Rows written to them before their triggers existed were not captured.
        const affected = status.sources
          .filter((source) => source.children.some((child) => installed.installedTables.includes(child.name)))
          .flatMap((source) => this.tablesOf(source.source));
        this.options.requestReload(
          [...new Set(affected)],
          `the change triggers of ${installed.installedTables.join(', ')} were just created`,
          'capture_restored',
        );
      }
      return (await readTriggerStatus(client, this.spec)).sources;
    } finally {
      // Released first: the pool listens again before this listener goes, and discards a client whose connection died.
      client.release(lost);
      client.removeListener('error', onError);
    }
  }

  private async checkShapes(): Promise<void> {
    const sources = this.spec.sources;
    const shapes = await readSourceTableShapes(this.options.pool, sources);
    const next = new Map<string, SourceTableShape>();
    sources.forEach((source, index) => {
      const name = formatQualifiedName(source);
      const shape = shapes[index]!;
      next.set(name, shape);
      const before = this.shapes.get(name);
      if (before === undefined) return;
      const detail = describeShapeChange(before, shape);
      if (detail === null) return;
      const tables = this.tablesOf(name);
      this.options.logger.warn({ source: name, tables, change: detail }, 'a source table changed; reloading the tables that read it');
      this.options.events.emit('sourceSchemaChanged', { source: name, tables, detail });
      // A table that is gone cannot be read: the reload waits until it is back (a new shape again).
      if (shape.oid !== null) this.options.requestReload(tables, `source table ${name} changed: ${detail}`, 'schema_change');
    });
    this.shapes = next;
  }

  private updateProblems(gaps: readonly CaptureGap[]): void {
    const { config, logger } = this.options;
    const logical = this.options.method === 'logical';
    const command = `tablecache ${logical ? 'capture' : 'triggers'} install --config ${config.file}`;
    const problems = gaps.map((gap): CaptureProblem => {
      const tables = this.tablesOf(gap.source);
      return {
        source: gap.source,
        tables,
        message:
          `changes to source table ${gap.source} are not captured (${gap.detail}), so table(s) ${tables.join(', ')} may be stale: ` +
          (logical
            ? `run \`${command}\`; the table(s) are reloaded once its changes reach the daemon again`
            : `run \`${command}\` as the table's owner; the table(s) are reloaded once its triggers are back`),
      };
    });
    const before = new Map(this.current.map((problem) => [problem.source, problem]));
    for (const problem of problems) {
      if (before.get(problem.source)?.message !== problem.message) logger.error({ source: problem.source, tables: problem.tables }, problem.message);
    }
    const now = new Set(problems.map((problem) => problem.source));
    for (const [source, problem] of before) {
      if (now.has(source)) continue;
      const what = logical ? 'the logical capture' : 'the change triggers';
      logger.info({ source, tables: problem.tables }, `${what} of a source table ${logical ? 'is' : 'are'} back; reloading the tables that read it`);
      this.options.requestReload(problem.tables, `${what} of ${source} ${logical ? 'is' : 'are'} back (changes made without it were missed)`, 'capture_restored');
    }
    this.current = problems;
    this.options.events.emit('captureChecked', { problems });
  }

  private tablesOf(source: string): string[] {
    return this.tablesBySource.get(source) ?? [];
  }
}
