import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { fileRedis, testRedisUrl } from '../../support/redis.ts';
import { pgLikeRows, pgLikeScorer, type PgLikeRow } from './processes/pgLikeRows.ts';

const { redis, prefix } = fileRedis('crossprocess');

describe('a reader in another process', () => {
  it('reads back everything the writer wrote, every pg value type intact, knowing only the URL and the table name', async () => {
    await using writer = await RedisStorageTable.open<PgLikeRow>({ redis, table: 'people', keyPrefix: prefix, scorer: pgLikeScorer });
    await writer.clear();
    await writer.putRecords(pgLikeRows());
    await writer.markLoaded({ coverage: { primary_key: [Interval.everything()], rank: [Interval.everything()] } });
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      fileURLToPath(new URL('./processes/readBack.ts', import.meta.url)),
      testRedisUrl(),
      prefix,
      'people',
    ]);
    expect(stdout.trim()).toBe('ok');
  });
});
