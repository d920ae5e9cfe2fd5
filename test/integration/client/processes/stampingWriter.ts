/**
 * The writer of the torn-read test. Keeps `count` records, every one stamped
 * with the number of the writer step that wrote it, and runs steps until its
 * stdin closes: refreshes (discard all, put all, merge), adjustments that
 * move the key range (same count), and full reloads (new generation). With a
 * small merge batch every merge also goes through the overlay.
 * Prints "ready" after the first load and "steps <n>" when it stops.
 * Usage: node --import tsx stampingWriter.ts <redisUrl> <keyPrefix> <table> <count> <mergeBatchSize>
 */
import { Interval } from '../../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../../lib/core/storageRecordsSpec.ts';
import { RedisStorageTable } from '../../../../lib/redis/redisStorageTable.ts';
import { stampedTableScorer, stampedRecord, type StampedRow } from './stampedRows.ts';

const [redisUrl, keyPrefix, table, countText, mergeBatchText] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countText);
const storage = await RedisStorageTable.open({ url: redisUrl, keyPrefix, table, scorer: stampedTableScorer, mergeBatchSize: Number(mergeBatchText), writeBatchSize: 64 });
const everything = new StorageRecordsSpec<StampedRow>('primary_key', [Interval.everything()]);
const rows = (stamp: number, firstId: number) => Array.from({ length: count }, (_, i) => stampedRecord(firstId + i, stamp));

let stopping = false;
process.stdin.on('end', () => (stopping = true));
process.stdin.resume();

let step = 0;
let firstId = 0;
await storage.putRecords(rows(step, firstId));
await storage.markLoaded({ coverage: { primary_key: [Interval.everything()], bucket: [Interval.everything()] } });
process.stdout.write('ready\n');
while (!stopping) {
  step++;
  if (step % 5 === 4) {
    await storage.clear();
    await storage.putRecords(rows(step, firstId));
    await storage.markLoaded({ coverage: { primary_key: [Interval.everything()], bucket: [Interval.everything()] } });
    continue;
  }
  if (step % 5 === 3) firstId = (firstId + 37) % count;
  for await (const row of storage.scratchDiscardRecords(everything)) void row;
  await storage.scratchPutRecords(rows(step, firstId));
  await storage.scratchMerge(step % 5 === 3 ? { coverage: { primary_key: [new Interval(firstId, firstId + count)], bucket: [Interval.everything()] } } : undefined);
}
await storage.close();
process.stdout.write(`steps ${step}\n`);
