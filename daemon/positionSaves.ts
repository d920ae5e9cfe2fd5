/**
 * A table's capture positions on their way to Redis (logical capture,
 * invariant 11): saved one at a time, in the order reported, off the path
 * of the table's next step; a position reported while one is being saved
 * replaces any not sent yet (only the newest matters). A failed save is
 * reported, not retried: the next step reports a position again.
 */
export class PositionSaves {
  private running: Promise<void> | null = null;
  private unsaved: bigint | null = null;

  constructor(
    private readonly save: (position: bigint) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Saves `position` after the saves reported before it. */
  report(position: bigint): void {
    this.unsaved = position;
    this.running ??= this.drain();
  }

  /** Resolves once every reported position has been saved (or has failed). */
  async settled(): Promise<void> {
    await this.running;
  }

  private async drain(): Promise<void> {
    for (let position = this.unsaved; position !== null; position = this.unsaved) {
      this.unsaved = null;
      try {
        await this.save(position);
      } catch (error) {
        this.onError(error);
      }
    }
    this.running = null;
  }
}
