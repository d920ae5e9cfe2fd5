/**
 * A writer that gets killed: loads a complete generation of `count` records
 * stamped "complete", then starts a reload stamped "partial" and, half way,
 * prints "mid-load" and waits for SIGKILL.
 * Usage: node --import tsx crashingWriter.ts <redisUrl> <keyPrefix> <table> <count>
 */
import { RedisStorageTable } from '../../../../lib/redis/redisStorageTable.ts';
import { stampedScorer, stampedRecords } from './stampedRecords.ts';

const [redisUrl, keyPrefix, table, countText] = process.argv.slice(2) as [string, string, string, string];
const count = Number(countText);
const storage = await RedisStorageTable.open({ url: redisUrl, keyPrefix, table, scorer: stampedScorer, leaseTtlMs: 500, writeBatchSize: 10 });
await storage.putRecords(stampedRecords(count, 'complete'));
await storage.markLoaded({ coverage: null });
await storage.clear();
await storage.putRecords(stampedRecords(count / 2, 'partial'));
process.stdout.write('mid-load\n');
setInterval(() => {}, 1_000);
