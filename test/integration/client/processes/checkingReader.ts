/**
 * A reader of the torn-read test: reads until it has done `reads` reads and
 * seen at least `minStamps` different writer steps (or 20 s passed), checking
 * on every answer that all records carry one stamp and that a read of the
 * whole table has exactly `count` records. Prints one JSON line:
 * { reads, violations, stamps, firstViolation }.
 * Usage: node --import tsx checkingReader.ts <redisUrl> <keyPrefix> <table> <count> <reads> <minStamps>
 */
import { openReader } from '../../../../lib/client/index.ts';
import type { StampedRow } from './stampedRows.ts';

const [redisUrl, keyPrefix, table, countText, readsText, minStampsText] = process.argv.slice(2) as string[];
const count = Number(countText);
const wantedReads = Number(readsText);
const minStamps = Number(minStampsText);
const reader = await openReader<StampedRow>({ url: redisUrl!, keyPrefix, table: table!, timeoutMs: 5_000 });

let reads = 0;
let violations = 0;
let firstViolation: string | null = null;
const stampsSeen = new Set<number>();

function check(what: string, rows: readonly (StampedRow | undefined)[], expectedCount?: number): void {
  reads++;
  const present = rows.filter((row): row is StampedRow => row !== undefined);
  const stamps = new Set(present.map((row) => row.stamp));
  for (const stamp of stamps) stampsSeen.add(stamp);
  const badCount = expectedCount !== undefined && present.length !== expectedCount;
  if (stamps.size > 1 || badCount) {
    violations++;
    firstViolation ??= `${what}: ${present.length} rows with stamps ${[...stamps].join(',')}`;
  }
}

const deadline = Date.now() + 20_000;
for (let i = 0; (reads < wantedReads || stampsSeen.size < minStamps) && Date.now() < deadline; i++) {
  const start = (i * 53) % (2 * count);
  switch (i % 5) {
    case 0:
      check('whole table', await reader.range('primary_key', -Infinity, Infinity), count);
      break;
    case 1:
      check('key range', await reader.range('primary_key', start, start + 40));
      break;
    case 2:
      check('bucket range', await reader.range('bucket', i % 10, (i % 10) + 3));
      break;
    case 3:
      check('keys', await reader.getMany(Array.from({ length: 25 }, (_, k) => (start + k * 7) % (2 * count))));
      break;
    default:
      check('one key', [await reader.get(start % count)]);
  }
}
await reader.close();
process.stdout.write(`${JSON.stringify({ reads, violations, stamps: stampsSeen.size, firstViolation })}\n`);
