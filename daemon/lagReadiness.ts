/** Options of a {@link LagReadiness}. */
export interface LagReadinessOptions {
  /** A table whose oldest change not yet visible is older than this (ms) makes the daemon not ready; 0: never. */
  readonly maxLagMs: number;
  /** Ready again only once the lag stayed at or below this (default half of `maxLagMs`)… */
  readonly recoverBelowMs?: number;
  /** …for this long (default 5,000 ms). */
  readonly recoverAfterMs?: number;
}

/** A table that makes the daemon not ready by its lag. */
export interface LaggingTable {
  readonly table: string;
  /** The lag now (ms). */
  readonly lagMs: number;
  /** The highest lag seen since it went over `maxLagMs` (ms). */
  readonly worstLagMs: number;
}

interface TableLagState {
  worstLagMs: number;
  lagMs: number;
  /** Since when (ms) the lag has been at or below the recovery bound; `null` while above it. */
  belowSince: number | null;
}

/**
 * Readiness by lag, with hysteresis so that it does not flap: a table goes
 * "lagging" when its oldest change not yet visible is older than
 * `maxLagMs`, and is dropped only once its lag has stayed at or below
 * `recoverBelowMs` (half of `maxLagMs` by default) for `recoverAfterMs`.
 * A table whose steps each take a little more than `maxLagMs` (lag climbing
 * over it, then falling to 0 with each step) thus stays not ready instead
 * of flipping with every step.
 *
 * Pure logic: the caller samples each table's lag ({@link observe}) with
 * the time of the sample.
 */
export class LagReadiness {
  private readonly lagging = new Map<string, TableLagState>();
  private readonly recoverBelowMs: number;
  private readonly recoverAfterMs: number;

  constructor(private readonly options: LagReadinessOptions) {
    this.recoverBelowMs = options.recoverBelowMs ?? options.maxLagMs / 2;
    this.recoverAfterMs = options.recoverAfterMs ?? 5_000;
  }

  /** Takes one sample: `table`'s oldest change not yet visible is `lagMs` old at time `now` (ms, any monotonic clock). */
  observe(table: string, lagMs: number, now: number): void {
    if (this.options.maxLagMs <= 0) return;
    const state = this.lagging.get(table);
    if (state === undefined) {
      if (lagMs > this.options.maxLagMs) this.lagging.set(table, { worstLagMs: lagMs, lagMs, belowSince: null });
      return;
    }
    state.lagMs = lagMs;
    state.worstLagMs = Math.max(state.worstLagMs, lagMs);
    if (lagMs > this.recoverBelowMs) {
      state.belowSince = null;
      return;
    }
    state.belowSince ??= now;
    if (now - state.belowSince >= this.recoverAfterMs) this.lagging.delete(table);
  }

  /** The tables that make the daemon not ready now. */
  laggingTables(): LaggingTable[] {
    return [...this.lagging].map(([table, state]) => ({ table, lagMs: state.lagMs, worstLagMs: state.worstLagMs }));
  }

  /** A readiness reason for a lagging table, naming it and its lag. */
  describe({ table, lagMs, worstLagMs }: LaggingTable): string {
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const now = lagMs > this.recoverBelowMs ? `is ${seconds(lagMs)} old` : `was up to ${seconds(worstLagMs)} old (now ${seconds(lagMs)})`;
    return (
      `table ${table} is behind: its oldest change not yet visible ${now}, over daemon.maxLagMs (${this.options.maxLagMs} ms); ` +
      `ready again once it stays below ${this.recoverBelowMs} ms for ${this.recoverAfterMs} ms`
    );
  }
}
