import type { Logger } from '../core/logger.ts';
import { LAYOUT_FORMAT_VERSION, type TableKeys, generationGroup } from './keyLayout.ts';
import type { ScriptConnection } from './luaScript.ts';
import { RedisCommandError, StorageFormatError } from './redisErrors.ts';
import {
  dropKeyGroups,
  listKeyGroups,
  mergeStep,
  readPublishedTable,
  type WriterSession,
} from './writerProtocol.ts';

// What a writer does when it opens a table, before its first write.

/**
 * What a new writer does before its first write: finish the merge a crashed
 * writer left behind (readers already see it through the overlay), delete
 * key groups no reader uses, and decide whether to continue on the live data
 * (written with the session's index names and `codecId`).
 */
export async function recoverTable(
  session: WriterSession,
  codecId: string,
  mergeBatchSize: number,
  logger: Logger,
): Promise<{ liveGeneration: number | null; adoptable: boolean }> {
  const { keys } = session;
  const published = await readPublishedTable(session.redis, keys);
  if (published.format !== null && published.format !== LAYOUT_FORMAT_VERSION) {
    throw new StorageFormatError(
      `Table "${keys.table}" in Redis uses key layout format ${published.format}; this writer writes format ${LAYOUT_FORMAT_VERSION}. ` +
        `Delete the keys "${keys.base}*" (Redis holds only a cache) or use a matching tablecache version.`,
    );
  }
  const liveGeneration = published.generation;
  if (liveGeneration !== null && published.overlay !== null) {
    logger.warn({ table: keys.table, generation: liveGeneration, staging: published.overlay }, 'finishing a merge the previous writer left half applied');
    // The staged session has the live generation's indexes, which may not be this writer's.
    const liveSession: WriterSession = { ...session, indexNames: published.indexNames ?? [] };
    const step = { generation: liveGeneration, staging: published.overlay, budget: mergeBatchSize, first: false, live: true, delta: 0, coverage: '' };
    while ((await mergeStep(liveSession, step)) > 0);
  }
  const orphans = (await listKeyGroups(session.redis, keys)).filter((group) => liveGeneration === null || group !== generationGroup(liveGeneration));
  if (orphans.length > 0) {
    logger.info({ table: keys.table, groups: orphans }, 'deleting key groups earlier writers left behind');
    await dropKeyGroups(session, { groups: orphans.map((listed) => ({ listed })), doing: 'deleting key groups earlier writers left behind' });
  }
  const adoptable =
    liveGeneration !== null && published.codec === codecId && JSON.stringify(published.indexNames ?? []) === JSON.stringify(session.indexNames);
  return { liveGeneration, adoptable };
}

/**
 * Announces a new writer on the table's change channel. Every step publishes
 * there from inside its script, so a Redis user that may not publish on it
 * (an ACL from before the channel existed) would fail every write: this
 * finds out at open, with the fix, instead. Near-cached readers treat the
 * announcement (it names no step) as "everything changed", which is safe.
 */
export async function announceWriter(redis: Pick<ScriptConnection, 'publish'>, keys: TableKeys, writerId: string): Promise<void> {
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
