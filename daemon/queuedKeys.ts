import type { ChangeBatch } from './changeBatch.ts';

/**
 * Counting and dropping the changed keys queued in batches not yet applied:
 * how the pipeline bounds the memory a flood of key payloads takes
 * (`daemon.maxQueuedKeysPerTable`).
 */

/** Distinct keys queued for `table` in `batches` (distinct within each batch). */
export function queuedKeysOf(batches: readonly ChangeBatch[], table: string): number {
  let queued = 0;
  for (const batch of batches) for (const [name, changes] of batch.entries()) if (name === table) queued += changes.keyCount;
  return queued;
}

/** Per table of `tables`, the distinct keys queued in `batches`. */
export function queuedKeysPerTable(batches: readonly ChangeBatch[], tables: Iterable<string>): Map<string, number> {
  const queued = new Map<string, number>([...tables].map((name) => [name, 0]));
  for (const batch of batches) for (const [name, changes] of batch.entries()) queued.set(name, (queued.get(name) ?? 0) + changes.keyCount);
  return queued;
}

/**
 * Drops the keys queued for `table` (its reload requests stay): a reload
 * requested after they arrived covers them. Each batch's `receivedKeys`
 * becomes at most what it still holds, so that the batch size and the
 * pipeline's global bound count what is held, not what was dropped.
 */
export function dropQueuedKeys(batches: readonly ChangeBatch[], table: string): void {
  for (const batch of batches) {
    let held = 0;
    for (const [name, changes] of batch.entries()) {
      if (name === table) {
        changes.keysByIndex.clear();
        changes.resolveKeys.clear();
      }
      held += changes.keyCount;
    }
    batch.receivedKeys = Math.min(batch.receivedKeys, held);
  }
}
