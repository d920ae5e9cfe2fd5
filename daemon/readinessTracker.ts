import type { EventEmitter } from 'node:events';
import { tableReadinessReasons, type DaemonPhase, type DaemonReadiness } from './daemonReadiness.ts';
import type { DaemonDependency, DaemonEvents, LoadProgressEvent, ReloadKind, WaitingEvent } from './daemonEvents.ts';
import { LagReadiness } from './lagReadiness.ts';

/** Options of a {@link ReadinessTracker}. */
export interface ReadinessTrackerOptions {
  /** The daemon's events, followed from construction on. */
  readonly events: EventEmitter<DaemonEvents>;
  /** The configured tables, in configuration order. */
  readonly tableNames: readonly string[];
  /** `daemon.maxLagMs`. */
  readonly maxLagMs: number;
  /** The storage's description, for a reason naming it. */
  readonly storageDescription: string;
}

/** What the daemon is at the moment readiness is asked for. */
export interface DaemonState {
  readonly phase: DaemonPhase;
  /** Whether the changes come from the replication slot (logical capture) rather than LISTEN. */
  readonly logicalCapture: boolean;
  /** Per table, whether its last load or reload succeeded (TableSync's `isLoaded`). */
  isLoaded(table: string): boolean;
  /** Whether the table was loaded once (readers keep that load while it is reloaded). */
  wasLoaded(table: string): boolean;
  /** The capture check's problems, for operators. */
  captureProblems(): readonly { readonly message: string }[];
  /** Per table, the reload requested and not finished yet. */
  pendingReloads(): ReadonlyMap<string, { readonly reasons: readonly string[]; readonly kinds: readonly ReloadKind[] }>;
  /** Per table, the age (ms) of its oldest change not yet visible. */
  pendingChangeAges(): ReadonlyMap<string, number>;
}

/**
 * Follows a daemon's events (what the start waits for, loads and their
 * progress, failed loads, connections down) and its tables' lag, and says
 * from them and the daemon's state whether it serves current data, and if
 * not, why not: what `/readyz` reports.
 */
export class ReadinessTracker {
  private waitingFor: WaitingEvent | null = null;
  private readonly loading = new Map<string, LoadProgressEvent>();
  /** Tables whose last load failed (they are retried). */
  private readonly failedLoads = new Set<string>();
  /** Dependencies whose connection is down, with what `/readyz` says about it when the event said more. */
  private readonly down = new Map<DaemonDependency, string | undefined>();
  /** Readiness by each table's oldest change not yet visible (`daemon.maxLagMs`), with hysteresis. */
  private readonly lag: LagReadiness;

  constructor(private readonly options: ReadinessTrackerOptions) {
    const { events } = options;
    this.lag = new LagReadiness({ maxLagMs: options.maxLagMs });
    events.on('waiting', (event) => {
      this.waitingFor = event;
    });
    events.on('started', () => {
      this.waitingFor = null;
    });
    events.on('loadStarted', ({ table, estimatedRows }) => {
      this.failedLoads.delete(table);
      this.loading.set(table, { table, rows: 0, estimatedRows, elapsedMs: 0 });
    });
    events.on('loadProgress', (event) => this.loading.set(event.table, event));
    events.on('loaded', ({ table }) => this.loading.delete(table));
    events.on('reloaded', ({ table }) => this.loading.delete(table));
    // Listening makes the pipeline emit every error: each is logged anyway, and now also heard.
    events.on('error', ({ table }) => {
      if (table === undefined || !this.loading.delete(table)) return;
      this.failedLoads.add(table);
    });
    events.on('connectionLost', ({ source, detail }) => this.down.set(source, detail));
    events.on('connectionRestored', ({ source }) => this.down.delete(source));
  }

  /** Whether the connection to `dependency` is down now. */
  isDown(dependency: DaemonDependency): boolean {
    return this.down.has(dependency);
  }

  /** Samples each table's lag (the hysteresis needs to know for how long it stayed low). */
  sampleLag(ages: ReadonlyMap<string, number>, now: number): void {
    for (const [table, ageMs] of ages) this.lag.observe(table, ageMs, now);
  }

  /** Whether the daemon in `state` serves current data, and if not, why not. */
  readiness(state: DaemonState, now: number): DaemonReadiness {
    const reasons: string[] = [];
    const tables: Record<string, { loaded: boolean }> = {};
    for (const name of this.options.tableNames) {
      // A reload keeps the last load published until it is done: readers see a complete table meanwhile.
      const reloading = state.wasLoaded(name) && !this.failedLoads.has(name);
      tables[name] = { loaded: state.isLoaded(name) || reloading };
    }
    switch (state.phase) {
      case 'created':
        reasons.push('not started');
        break;
      case 'starting':
        reasons.push(this.waitingFor === null ? 'starting' : `waiting for ${this.waitingFor.detail}`);
        break;
      case 'stopping':
      case 'stopped':
        reasons.push(state.phase);
        break;
      case 'running': {
        if (this.down.has('postgres')) {
          reasons.push(
            state.logicalCapture
              ? 'the replication stream from Postgres is down; reconnecting (it resumes from the slot, nothing is reloaded)'
              : 'the LISTEN connection to Postgres is down; reconnecting (every table is reloaded once it is back)',
          );
        }
        if (this.down.has('redis')) reasons.push(this.down.get('redis') ?? `the connection to ${this.options.storageDescription} is down; reconnecting`);
        for (const problem of state.captureProblems()) reasons.push(problem.message);
        this.sampleLag(state.pendingChangeAges(), now);
        for (const lagging of this.lag.laggingTables()) reasons.push(this.lag.describe(lagging));
        reasons.push(...tableReadinessReasons(tables, state.pendingReloads(), this.loading, this.failedLoads));
        break;
      }
    }
    return { ready: reasons.length === 0, phase: state.phase, reasons, tables };
  }
}
