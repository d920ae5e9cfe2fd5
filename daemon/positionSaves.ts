/**
 * Least time between the starts of two saves of one table's position, by
 * default. Each save is a script call in Redis and a standby status update
 * to the walsender: at one step every few ms under a write-heavy load, they
 * were about a fifth of the daemon's round trips per step, all on the
 * database's cores. Saved less often, the slot keeps up to this much more
 * WAL and a restart replays it (refreshing keys Redis already holds).
 */
const DEFAULT_POSITION_SAVE_INTERVAL_MS = 100;

/**
 * A table's capture positions on their way to Redis (logical capture,
 * invariant 11): saved one at a time, in the order reported, off the path
 * of the table's next step; a position reported while one is being saved,
 * or less than `minIntervalMs` after the last save started, replaces any not
 * sent yet (only the newest matters), and is saved once the interval is
 * over. A failed save is reported, not retried: the next step reports a
 * position again.
 */
export class PositionSaves {
  private running: Promise<void> | null = null;
  private unsaved: bigint | null = null;
  /** Ends the pause between two saves early ({@link settled}: the newest position is saved now). */
  private endPause: (() => void) | null = null;
  private hurrying = 0;

  constructor(
    private readonly save: (position: bigint) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly minIntervalMs = DEFAULT_POSITION_SAVE_INTERVAL_MS,
  ) {}

  /** Saves `position` after the saves reported before it. */
  report(position: bigint): void {
    this.unsaved = position;
    this.running ??= this.drain();
  }

  /** Saves the newest position reported without waiting out the interval, and resolves once every reported position has been saved (or has failed). */
  async settled(): Promise<void> {
    this.hurrying++;
    try {
      this.endPause?.();
      await this.running;
    } finally {
      this.hurrying--;
    }
  }

  private async drain(): Promise<void> {
    for (let position = this.unsaved; position !== null; position = this.unsaved) {
      this.unsaved = null;
      const startedAt = performance.now();
      try {
        await this.save(position);
      } catch (error) {
        this.onError(error);
      }
      await this.pause(startedAt + this.minIntervalMs - performance.now());
    }
    this.running = null;
  }

  /** Waits `ms` for more reports to coalesce, unless someone waits for the saves to settle. */
  private async pause(ms: number): Promise<void> {
    if (ms <= 0 || this.hurrying > 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.endPause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.endPause = null;
  }
}
