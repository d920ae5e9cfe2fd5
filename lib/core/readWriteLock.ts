/**
 * Async locks for the single-process coordination of a CachedTable. JavaScript
 * runs one task at a time, but every `await` lets another task in: these
 * locks make a multi-step operation (check coverage, then read storage; stage
 * a refresh, then merge) indivisible with respect to the others.
 */

/** A FIFO mutex: one holder at a time. */
export class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `task` once every earlier task has finished; resolves to its result. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * A readers-writer lock that prefers writers: once a writer waits, new readers
 * queue behind it, so a stream of reads cannot starve a merge.
 */
export class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private readonly waitingWriters: Array<() => void> = [];
  private waitingReaders: Array<() => void> = [];

  /** Runs `task` while holding a shared (read) hold. */
  async shared<T>(task: () => Promise<T>): Promise<T> {
    await this.acquireShared();
    try {
      return await task();
    } finally {
      this.releaseShared();
    }
  }

  /** Runs `task` while holding the exclusive (write) hold. */
  async exclusive<T>(task: () => Promise<T>): Promise<T> {
    await this.acquireExclusive();
    try {
      return await task();
    } finally {
      this.releaseExclusive();
    }
  }

  private acquireShared(): Promise<void> {
    if (!this.writing && this.waitingWriters.length === 0) {
      this.readers++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waitingReaders.push(() => {
      this.readers++;
      resolve();
    }));
  }

  private releaseShared(): void {
    this.readers--;
    if (this.readers === 0) this.wakeWriter();
  }

  private acquireExclusive(): Promise<void> {
    if (!this.writing && this.readers === 0) {
      this.writing = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waitingWriters.push(() => {
      this.writing = true;
      resolve();
    }));
  }

  private releaseExclusive(): void {
    this.writing = false;
    if (this.waitingWriters.length > 0) {
      this.wakeWriter();
      return;
    }
    const readers = this.waitingReaders;
    this.waitingReaders = [];
    for (const wake of readers) wake();
  }

  private wakeWriter(): void {
    if (this.writing || this.readers > 0) return;
    this.waitingWriters.shift()?.();
  }
}
