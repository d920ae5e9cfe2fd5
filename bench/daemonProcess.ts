/**
 * The daemon as a child process of bench/daemon.bench.ts:
 * `node --import tsx bench/daemonProcess.ts <config file>`. Logs pino JSON
 * lines to stdout and `daemon ready` once every table is loaded; stops on SIGTERM.
 * A line `stats` on stdin makes it print `{"msg":"step stats","tickMs":[…],"provenBy":[…],"refreshedKeys":…,"readAheadKeys":…}`:
 * per step since the last `stats`, the wait for its snapshot's cut (the cost
 * of the snapshot-consistent cut) and what proved the cut (`tick`, or a
 * writer's `commit`); and the keys refreshed, and of those the keys read
 * ahead while the cut was proven.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { loadConfig } from '../daemon/config/loadConfig.ts';
import { TablecacheDaemon } from '../daemon/tablecacheDaemon.ts';

const config = await loadConfig(process.argv[2]!);
const logger = pino({ level: config.daemon.logLevel });
const daemon = await TablecacheDaemon.start(config, { logger });
const loaded = new Set<string>();
const ready = () => process.stdout.write(`${JSON.stringify({ msg: 'daemon ready' })}\n`);
daemon.on('loaded', ({ table }) => {
  loaded.add(table);
  if (loaded.size === daemon.tableNames.length) ready();
});
// Logical capture resumes tables from Redis without loading them: ready at once.
if (Object.values(daemon.readiness().tables).every((table) => table.loaded)) ready();
let tickMs: number[] = [];
let provenBy: string[] = [];
let refreshedKeys = 0;
let readAheadKeys = 0;
daemon.on('batchApplied', (event) => {
  tickMs.push(event.tickMs);
  provenBy.push(event.cutProvenBy);
  for (const table of event.tables) {
    refreshedKeys += table.keys;
    readAheadKeys += table.readAheadKeys;
  }
});
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  process.stdout.write(`${JSON.stringify({ msg: 'step stats', tickMs, provenBy, refreshedKeys, readAheadKeys })}\n`);
  tickMs = [];
  provenBy = [];
  refreshedKeys = 0;
  readAheadKeys = 0;
});
process.once('SIGTERM', () => void daemon.close().then(() => process.exit(0)));
