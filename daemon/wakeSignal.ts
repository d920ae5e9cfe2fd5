/**
 * Wakes whoever waits for a table loop's next change, barrier or reload
 * request: the loop itself, and the step it opens ahead while one applies
 * (several may wait at once, so one callback slot is not enough).
 */
export class WakeSignal {
  private waiters: (() => void)[] = [];

  /** Wakes every current waiter. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** Resolves with the next {@link wake}. */
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves with the next {@link wake}, or after `timeoutMs`. */
  async nextOrTimeout(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let waiter: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      waiter = resolve;
      this.waiters.push(resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    this.waiters = this.waiters.filter((other) => other !== waiter);
  }
}
