/**
 * Wrappers around the record streams {@link CachedTable} moves from the
 * database into storage. Internal: not exported from the package.
 */
import type { Adjustment } from './indexes.ts';

/**
 * Starts iterating `records` at once (the first `next()` is in flight) and
 * hands out the same sequence later. `cancel` releases the source when the
 * records turn out not to be needed.
 */
export function readingAhead<R>(records: AsyncIterable<R>): AsyncIterable<R> & { cancel(): Promise<void> } {
  const iterator = records[Symbol.asyncIterator]();
  let first: Promise<IteratorResult<R>> | null = iterator.next();
  // Handled where it is awaited; until then a failure must not count as unhandled.
  first.catch(() => undefined);
  const takeFirst = (): Promise<IteratorResult<R>> | null => {
    const pending = first;
    first = null;
    return pending;
  };
  const cancel = async (): Promise<void> => {
    const pending = takeFirst();
    const result = await pending?.catch(() => ({ done: true as const, value: undefined }));
    if (result === undefined || !result.done) await iterator.return?.();
  };
  return {
    cancel,
    [Symbol.asyncIterator]: () => ({
      next: () => takeFirst() ?? iterator.next(),
      return: async () => {
        await cancel();
        return { done: true, value: undefined };
      },
    }),
  };
}

/** Passes each record to the adjustment's `observeLoaded` on its way into storage. */
export async function* observingLoaded<R>(records: AsyncIterable<R>, adjustment: Adjustment<R>): AsyncGenerator<R> {
  for await (const record of records) {
    adjustment.observeLoaded(record);
    yield record;
  }
}
