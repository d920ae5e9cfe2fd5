import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import { LAYOUT_FORMAT_VERSION, MetaField, type TableKeys, generationGroup } from './keyLayout.ts';
import { RedisCommandError, StorageFormatError } from './redisErrors.ts';
import { readerFunctionLibrary } from './scripts/readerScripts.ts';
import { writerScripts } from './scripts/writerScripts.ts';

// What a writer does when it opens a table, before its first write.

/**
 * What a new writer does before its first write: finish the merge a crashed
 * writer left behind (readers already see it through the overlay), delete
 * key groups no reader uses, and decide whether to continue on the live data.
 */
export async function recoverTable(
  redis: Redis,
  keys: TableKeys,
  fence: string,
  indexNames: readonly string[],
  codecId: string,
  mergeBatchSize: number,
  logger: Logger,
): Promise<{ liveGeneration: number | null; adoptable: boolean }> {
  const meta = await redis.hmget(keys.meta, MetaField.format, MetaField.generation, MetaField.codec, MetaField.indexes, MetaField.overlay);
  const field = (i: number): string | null => meta[i] ?? null;
  const [format, generationText, codec, indexesJson, overlay] = [field(0), field(1), field(2), field(3), field(4)];
  if (format !== null && format !== LAYOUT_FORMAT_VERSION) {
    throw new StorageFormatError(
      `Table "${keys.table}" in Redis uses key layout format ${format}; this writer writes format ${LAYOUT_FORMAT_VERSION}. ` +
        `Delete the keys "${keys.base}*" (Redis holds only a cache) or use a matching tablecache version.`,
    );
  }
  const liveGeneration = generationText === null ? null : Number(generationText);
  const liveIndexNames: string[] = indexesJson === null ? [] : (JSON.parse(indexesJson) as string[]);
  if (liveGeneration !== null && overlay !== null) {
    logger.warn({ table: keys.table, generation: liveGeneration, staging: overlay }, 'finishing a merge the previous writer left half applied');
    const stagingId = Number(overlay);
    const mergeKeys = [
      keys.meta,
      keys.owned,
      keys.records(liveGeneration),
      keys.stagedRecords(stagingId),
      keys.stagedDeletes(stagingId),
      ...liveIndexNames.map((name) => keys.index(liveGeneration, name)),
      ...liveIndexNames.map((name) => keys.stagedIndex(stagingId, name)),
    ];
    let remaining: number;
    do {
      remaining = Number(await writerScripts.mergeStep.run(redis, mergeKeys, [fence, mergeBatchSize, '0', '1', stagingId, 0, '', Date.now()]));
    } while (remaining > 0);
  }
  const groups = await redis.hkeys(keys.owned);
  const orphans = groups.filter((group) => liveGeneration === null || group !== generationGroup(liveGeneration));
  if (orphans.length > 0) {
    logger.info({ table: keys.table, groups: orphans }, 'deleting key groups earlier writers left behind');
    await writerScripts.dropKeyGroups.run(redis, [keys.meta, keys.owned], [fence, ...orphans]);
  }
  const adoptable = liveGeneration !== null && codec === codecId && JSON.stringify(liveIndexNames) === JSON.stringify(indexNames);
  return { liveGeneration, adoptable };
}

/**
 * Loads the readers' function library (FCALL_RO is cheaper per read than
 * EVALSHA_RO). Readers fall back to scripts without it, so a Redis that
 * refuses (an ACL without FUNCTION, say) costs only speed.
 */
export async function loadReaderFunctions(redis: Redis, keys: TableKeys, logger: Logger): Promise<void> {
  try {
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', readerFunctionLibrary.source);
  } catch (error) {
    logger.warn({ table: keys.table, library: readerFunctionLibrary.name, err: error }, 'could not load the reader function library; readers will use scripts');
  }
}

/**
 * Announces a new writer on the table's change channel. Every step publishes
 * there from inside its script, so a Redis user that may not publish on it
 * (an ACL from before the channel existed) would fail every write: this
 * finds out at open, with the fix, instead. Near-cached readers treat the
 * announcement (it names no step) as "everything changed", which is safe.
 */
export async function announceWriter(redis: Pick<Redis, 'publish'>, keys: TableKeys, writerId: string): Promise<void> {
  try {
    await redis.publish(keys.changes, JSON.stringify({ v: 1, writer: writerId }));
  } catch (error) {
    if (!(error instanceof Error) || !/^NOPERM/.test(error.message)) throw error;
    throw new RedisCommandError(
      `The Redis user may not publish on ${keys.changes}, the table's change channel that every writer step announces itself on: ` +
        `add the channel rule "&${keys.changes}" (or "&{<keyPrefix>*" for every table) to its ACL SETUSER, see docs/security.md. (${error.message})`,
      { cause: error },
    );
  }
}
