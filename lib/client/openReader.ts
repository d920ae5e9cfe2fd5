import { TablecacheError } from '../core/errors.ts';
import { DEFAULT_KEY_PREFIX, TableKeys } from '../redis/keyLayout.ts';
import { MessagePackRecordCodec, type RecordCodec } from '../redis/recordCodec.ts';
import { RedisConnectionError, StorageFormatError } from '../redis/redisErrors.ts';
import { NearCache, type NearCacheOptions } from './nearCache.ts';
import { ReaderConnection, type ReaderConnectionOptions } from './readerConnection.ts';
import { TableReader } from './tableReader.ts';

/** Options of {@link openReader}. */
export interface ReaderOptions<R> extends ReaderConnectionOptions {
  /** The table name the writer uses. */
  readonly table: string;
  /** Start of every key name inside the hash tag (default `tablecache:`); must match the writer's. */
  readonly keyPrefix?: string;
  /** The table's hash tag, when its writer placed it with one (`tables.<name>.hashTag` of the daemon's config); must match the writer's. */
  readonly hashTag?: string;
  /** Record decoding (default {@link MessagePackRecordCodec}); must match the writer's codec id. */
  readonly codec?: RecordCodec<R>;
  /**
   * Keep up to `maxRecords` records (and about `maxBytes`) in this process,
   * coherent with the writer through the table's change stream: `get` and
   * `getMany` are answered from it when every key asked is there. Off by
   * default. README "Near-cache" states the guarantee; records it returns
   * are frozen (shared between callers).
   */
  readonly nearCache?: NearCacheOptions;
}

/**
 * Opens a reader of a table a {@link RedisStorageTable} writes: it needs
 * only the table name and Redis, never Postgres. Every read is one atomic
 * Redis call (a read-only function, FCALL_RO, or the same code as a
 * read-only script, EVALSHA_RO), so it works on replicas, for ACL users that
 * may only read, and never sees half of a writer step.
 *
 * @throws {@link RedisConnectionError} when Redis cannot be reached, or does not answer, within `timeoutMs`.
 * @throws `RedisCommandError` (`TC_STORAGE_FAILED`) when Redis refuses the reader's scripts (an ACL without EVALSHA_RO, say;
 * docs/redis-key-layout.md lists the permissions a reader needs).
 *
 * A table not loaded yet, or stored in a key layout format this reader does
 * not know, does not make it throw: the reader opens, its reads throw
 * `TC_NOT_LOADED` or `TC_STORAGE_FORMAT`, and they succeed once a writer
 * (of this version) has loaded the table, without reopening.
 * @example
 * ```ts
 * await using users = await openReader<User>({ url: 'redis://127.0.0.1:6379', table: 'users' });
 * const alice = await users.get(1);
 * const some = await users.range('primary_key', 1, 100);
 * ```
 */
export async function openReader<R = Record<string, unknown>>(options: ReaderOptions<R>): Promise<TableReader<R>> {
  const keys = new TableKeys(options.table, options.keyPrefix ?? DEFAULT_KEY_PREFIX, options.hashTag);
  const connection = await ReaderConnection.open(options, `reading table "${options.table}"`);
  const reader = new TableReader<R>(connection, keys, options.codec ?? (new MessagePackRecordCodec() as unknown as RecordCodec<R>));
  if (options.nearCache !== undefined) {
    try {
      await reader.attachNearCache(new NearCache<R>(options.nearCache));
    } catch (error) {
      await reader.close();
      throw error;
    }
  }
  try {
    // One read proves that Redis answers and that this user may run the reader's scripts.
    await reader.info();
  } catch (error) {
    // Like a table not loaded yet, data in a format this reader does not know can heal (a writer of
    // this version reloads), so the reader stays open and its reads throw TC_STORAGE_FORMAT until then.
    if (error instanceof StorageFormatError) return reader;
    await reader.close();
    if (error instanceof TablecacheError && error.code === 'TC_TIMEOUT') {
      throw new RedisConnectionError(`Redis accepted the connection for table "${options.table}" but did not answer within ${connection.timeoutMs} ms.`, {
        cause: error,
      });
    }
    throw error;
  }
  return reader;
}
