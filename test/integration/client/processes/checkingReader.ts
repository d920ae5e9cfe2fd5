/**
 * A reader of the torn-read test: reads until it has done `reads` reads and
 * seen at least `minStamps` different writer steps (or 45 s passed: a loaded
 * machine is slow, and a fast one stops at the counts), checking
 * on every answer that all records carry one stamp and that a read of the
 * whole table has exactly `count` records. Prints one JSON line:
 * { reads, violations, stamps, firstViolation }.
 * With a seventh argument "near" it reads through a near-cache (hot keys, so
 * that most gets and getManys are answered from it).
 * Usage: node --import tsx checkingReader.ts <redisUrl> <keyPrefix> <table> <count> <reads> <minStamps> [near]
 */
import { openReader } from '../../../../lib/client/index.ts';
import type { StampedRow } from './stampedRows.ts';

const [redisUrl, keyPrefix, table, countText, readsText, minStampsText, mode] = process.argv.slice(2) as string[];
const near = mode === 'near';
const count = Number(countText);
const wantedReads = Number(readsText);
const minStamps = Number(minStampsText);
const reader = await openReader<StampedRow>({ url: redisUrl!, keyPrefix, table: table!, timeoutMs: 5_000, ...(near ? { nearCache: { maxRecords: 10_000 } } : {}) });

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

const deadline = Date.now() + 45_000;
for (let i = 0; (reads < wantedReads || stampsSeen.size < minStamps) && Date.now() < deadline; i++) {
  // Through the near-cache, key reads go to 60 hot keys, so that many are hits.
  const start = near && i % 5 >= 3 ? (i * 53) % 60 : (i * 53) % (2 * count);
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
    case 3: {
      const keys = Array.from({ length: 25 }, (_, k) => (start + k * 7) % (2 * count));
      check('keys', await reader.getMany(keys));
      // Through the near-cache, the same keys again: usually answered from it.
      if (near) check('keys again', await reader.getMany(keys));
      break;
    }
    default:
      check('one key', [await reader.get(start % count)]);
      if (near) check('one key again', [await reader.get(start % count)]);
  }
}
const nearCacheHits = reader.nearCacheStats()?.hits ?? null;
await reader.close();
process.stdout.write(`${JSON.stringify({ reads, violations, stamps: stampsSeen.size, firstViolation, nearCacheHits })}\n`);
