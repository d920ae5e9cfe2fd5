/** A promise with its resolve and reject exposed, so a test decides when a step finishes. */
export interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** Creates a {@link Deferred} (Node 20 has no `Promise.withResolvers`). */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets every task that can make progress without outside input do so: a
 * macrotask turn runs all pending promise callbacks first. Used to assert
 * that something is still waiting, not as a stand-in for a condition.
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
