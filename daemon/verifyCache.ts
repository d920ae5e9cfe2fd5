import { isDeepStrictEqual } from 'node:util';
import { openReader } from '../lib/client/openReader.ts';
import { InvalidArgumentError } from '../lib/core/errors.ts';
import type { KeyColumnIndexes } from '../lib/core/keyColumnIndexes.ts';
import type { PrimaryKey } from '../lib/core/storageTable.ts';
import { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { primaryKeyField } from '../lib/redis/keyLayout.ts';
import { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import { RedisConnectionError } from '../lib/redis/redisErrors.ts';
import type { TablecacheConfig } from './config/configSchema.ts';
import { connectRedis, describeRedis, type RedisConnection } from './redisConnection.ts';
import { topologyErrorOf } from './redisTopology.ts';
import { tableIndexes } from './config/tableIndexes.ts';

type Row = Record<string, unknown>;

/** One record that differs between Postgres and Redis. */
export interface RecordDifference {
  /** The record's primary key, as its Redis field. */
  readonly key: string;
  /** `missing`: in Postgres, not in Redis; `extra`: in Redis, not in Postgres; `changed`: in both, with other values. */
  readonly kind: 'missing' | 'extra' | 'changed';
  /** For `changed`: the columns whose values differ. */
  readonly columns: readonly string[];
}

/** The comparison of one cached table. */
export interface TableVerification {
  readonly table: string;
  /** Whether a writer has published the table in Redis. */
  readonly loaded: boolean;
  readonly postgresRecords: number;
  readonly redisRecords: number;
  readonly missing: number;
  readonly extra: number;
  readonly changed: number;
  /** The first differences, at most `maxDifferences`, ordered by key. */
  readonly differences: readonly RecordDifference[];
  readonly equal: boolean;
}

/** Options of {@link verifyCache}. */
export interface VerifyOptions {
  /** Only these tables (default: every configured table). */
  readonly tables?: readonly string[];
  /** How many differences to list per table (default 10). */
  readonly maxDifferences?: number;
  /** How long the one atomic Redis read of a whole table may take (default 60,000 ms). */
  readonly redisTimeoutMs?: number;
}

/**
 * Compares each cached table in Redis with its query in Postgres: the same
 * primary keys, and the same values as Redis can hold them (each Postgres
 * record is compared after a round trip through the record codec, so `-0`
 * and `0` count as equal, as they are once stored).
 *
 * Both sides are read whole (Redis in one atomic read), so run it on a quiet
 * database, or expect changes made during the comparison to show up as
 * differences.
 *
 * @throws {@link InvalidArgumentError} when `tables` names a table the configuration does not have.
 */
export async function verifyCache(config: TablecacheConfig, options: VerifyOptions = {}): Promise<TableVerification[]> {
  const names = options.tables ?? config.tables.map((table) => table.name);
  const unknown = names.filter((name) => !config.tables.some((table) => table.name === name));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(`No cached table named ${unknown.join(', ')} in ${config.file}; its tables are ${config.tables.map((table) => table.name).join(', ')}.`);
  }
  const db = new PostgresAccess({ connectionString: config.postgres.url, application_name: 'tablecache-verify' });
  let redis: RedisConnection | undefined;
  try {
    redis = await connectRedis(config.redis, 'tablecache-verify', 'read');
    const results: TableVerification[] = [];
    for (const table of config.tables.filter((candidate) => names.includes(candidate.name))) {
      const indexes = await tableIndexes(table);
      results.push(await verifyTable(table.name, indexes, db, redis, { keyPrefix: config.redis.keyPrefix, hashTag: table.hashTag }, options));
    }
    return results;
  } catch (error) {
    // A failover or resharding under way is no difference between Postgres and Redis: say so, and exit as a connection problem.
    const topology = error instanceof RedisConnectionError ? undefined : topologyErrorOf(error);
    if (topology === undefined) throw error;
    throw new RedisConnectionError(`${describeRedis(config.redis)} is failing over or resharding (${topology}); nothing was compared. Run verify again once it has settled.`, {
      cause: error,
    });
  } finally {
    await redis?.quit().catch(() => redis?.disconnect());
    await db.close();
  }
}

async function verifyTable(
  name: string,
  indexes: KeyColumnIndexes,
  db: PostgresAccess,
  redis: RedisConnection,
  keys: { readonly keyPrefix: string; readonly hashTag: string | undefined },
  options: VerifyOptions,
): Promise<TableVerification> {
  const codec = new MessagePackRecordCodec<Row>();
  const reader = await openReader<Row>({ redis, table: name, keyPrefix: keys.keyPrefix, ...(keys.hashTag === undefined ? {} : { hashTag: keys.hashTag }), timeoutMs: options.redisTimeoutMs ?? 60_000 });
  const info = await reader.info();
  const cached = new Map<string, Row>();
  if (info.loaded) {
    for (const record of await reader.range('primary_key', -Infinity, Infinity)) cached.set(fieldOf(indexes.primaryKey(record)), record);
  }
  await reader.close();
  const differences: RecordDifference[] = [];
  let postgresRecords = 0;
  for await (const record of db.getRecords(indexes.dbRecordsSpec(indexes.createSpec('primary_key', { all: true })))) {
    postgresRecords++;
    const key = fieldOf(indexes.primaryKey(record));
    const stored = cached.get(key);
    if (stored === undefined) {
      differences.push({ key, kind: 'missing', columns: [] });
      continue;
    }
    cached.delete(key);
    const expected = codec.decode(codec.encode(record));
    if (!isDeepStrictEqual(expected, stored)) differences.push({ key, kind: 'changed', columns: differingColumns(expected, stored) });
  }
  for (const key of cached.keys()) differences.push({ key, kind: 'extra', columns: [] });
  const count = (kind: RecordDifference['kind']) => differences.filter((difference) => difference.kind === kind).length;
  differences.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    table: name,
    loaded: info.loaded,
    postgresRecords,
    redisRecords: info.loaded ? info.recordCount : 0,
    missing: count('missing'),
    extra: count('extra'),
    changed: count('changed'),
    differences: differences.slice(0, options.maxDifferences ?? 10),
    equal: info.loaded && differences.length === 0,
  };
}

/** The key as text, as Redis names the record. */
function fieldOf(key: PrimaryKey): string {
  return primaryKeyField(key);
}

function differingColumns(expected: Row, stored: Row): string[] {
  const columns = new Set([...Object.keys(expected), ...Object.keys(stored)]);
  return [...columns].filter((column) => !isDeepStrictEqual(expected[column], stored[column]));
}
