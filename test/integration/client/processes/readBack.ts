/**
 * Reads a table given only the Redis URL, key prefix and table name, and
 * checks it against the rows the writer wrote. Prints "ok" or the mismatch.
 * Usage: node --import tsx readBack.ts <redisUrl> <keyPrefix> <table>
 */
import { deepStrictEqual } from 'node:assert';
import { openReader } from '../../../../lib/client/index.ts';
import { pgLikeRows, type PgLikeRow } from './pgLikeRows.ts';

const [redisUrl, keyPrefix, table] = process.argv.slice(2) as [string, string, string];
const expected = pgLikeRows();
await using reader = await openReader<PgLikeRow>({ url: redisUrl, keyPrefix, table });
try {
  deepStrictEqual(await reader.get('user:7'), expected[7]);
  deepStrictEqual(await reader.getMany(['user:0', 'nobody', 'user:49']), [expected[0], undefined, expected[49]]);
  deepStrictEqual(await reader.range('primary_key', -Infinity, Infinity), expected);
  deepStrictEqual(await reader.range('rank', -10, -4), expected.slice(5, 11).reverse());
  deepStrictEqual((await reader.info()).recordCount, expected.length);
  process.stdout.write('ok\n');
} catch (error) {
  process.stdout.write(`${(error as Error).message}\n`);
}
