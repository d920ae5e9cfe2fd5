/**
 * A reader process of the chaos suite: reads the cached `users` table
 * through the client (get, getMany, range) as fast as it can until its
 * stdin closes, and every fourth read the whole `accounts` table of the
 * transfer workload, checking its invariant (the account count and the
 * total never change). Then prints one JSON line: reads served, whole-table
 * transfer reads checked and torn (with the first torn one), and errors by
 * code (expected while Redis is down, paused or restarted: they are counted,
 * not failures).
 *
 * With a seventh argument "near" it reads users through a near-cache (the
 * reader client's in-process cache, coherent through the change stream), on
 * a hot tenth of the users so that many reads are answered from it; the
 * summary then also counts near-cache hits.
 *
 * `node --import tsx chaosReader.ts <redis url | cluster:<node url>,…> <key prefix> <max user id> <seed> <accounts> <account balance> [near]`
 */
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { checkTransferRead, type TransferTable } from '../../integration/daemon/transferWorkload.ts';
import { SeededRandom } from '../seededRandom.ts';

const [url, keyPrefix, maxUserId, seed, accounts, balance, mode] = process.argv.slice(2);
const near = mode === 'near';
const connection = url!.startsWith('cluster:') ? { cluster: { nodes: url!.slice('cluster:'.length).split(',') } } : { url: url! };
const random = new SeededRandom(Number(seed));
const maxId = Number(maxUserId);
const transferTable: TransferTable = { schema: 'unused', accounts: Number(accounts), balance: Number(balance) };
const counts = {
  served: 0,
  transferChecked: 0,
  transferTorn: 0,
  firstTorn: null as string | null,
  errors: {} as Record<string, number>,
  nearCacheHits: null as number | null,
};
let running = true;
// The parent may be gone (it crashed or was killed): nobody reads the summary then.
process.stdout.on('error', () => {});
process.stdin.resume();
process.stdin.on('end', () => {
  running = false;
});

function countError(error: unknown): void {
  const code = (error as { code?: unknown }).code;
  const key = typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown';
  counts.errors[key] = (counts.errors[key] ?? 0) + 1;
}

// Opening may fail while Redis restarts: retry until it works or the run ends.
async function openUntilRunEnds(table: string): Promise<TableReader<Record<string, unknown>> | undefined> {
  while (running) {
    try {
      return await openReader<Record<string, unknown>>({ ...connection, table, keyPrefix: keyPrefix!, timeoutMs: 1_000, ...(near ? { nearCache: { maxRecords: 1_000 } } : {}) });
    } catch (error) {
      countError(error);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return undefined;
}
const reader = await openUntilRunEnds('users');
const accountsReader = await openUntilRunEnds('accounts');

while (running && reader && accountsReader) {
  const id = random.int(1, near ? Math.max(1, Math.floor(maxId / 10)) : maxId);
  try {
    const kind = random.int(0, 3);
    if (kind === 3) {
      const check = checkTransferRead(transferTable, await accountsReader.range('primary_key', 0, 2 ** 40));
      counts.transferChecked++;
      if (!check.ok) {
        counts.transferTorn++;
        counts.firstTorn ??= `${check.count} accounts holding ${check.total}`;
      }
    } else if (kind === 0) await reader.get(id);
    else if (kind === 1) await reader.getMany(Array.from({ length: 10 }, (_, i) => id + i));
    else await reader.range('primary_key', id, id + 20);
    counts.served++;
  } catch (error) {
    countError(error);
    // A failing read returns at once (no offline queue); pause so that an outage is not a busy loop.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Let the stdin 'end' event through between reads.
  await new Promise((resolve) => setImmediate(resolve));
}
counts.nearCacheHits = reader?.nearCacheStats()?.hits ?? null;
await reader?.close();
await accountsReader?.close();
process.stdout.write(`${JSON.stringify(counts)}\n`);
