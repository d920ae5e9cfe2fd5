/**
 * The daemon as a child process of bench/daemon.bench.ts:
 * `node --import tsx bench/daemonProcess.ts <config file>`. Logs pino JSON
 * lines to stdout and `daemon ready` once every table is loaded; stops on SIGTERM.
 */
import { pino } from 'pino';
import { loadConfig } from '../daemon/config/loadConfig.ts';
import { TablecacheDaemon } from '../daemon/tablecacheDaemon.ts';

const config = await loadConfig(process.argv[2]!);
const logger = pino({ level: config.daemon.logLevel });
const daemon = await TablecacheDaemon.start(config, { logger });
const loaded = new Set<string>();
daemon.on('loaded', ({ table }) => {
  loaded.add(table);
  if (loaded.size === daemon.tableNames.length) process.stdout.write(`${JSON.stringify({ msg: 'daemon ready' })}\n`);
});
process.once('SIGTERM', () => void daemon.close().then(() => process.exit(0)));
