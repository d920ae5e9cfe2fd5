/**
 * One reader process of bench/redisScale.bench.ts, so that the readers are
 * spread over processes (and cores) instead of sharing one event loop:
 * `node --import tsx bench/redisScaleReaders.ts '<ReaderProcessOptions as JSON>'`,
 * started with an IPC channel. It opens its readers, sends `{ ready: true }`,
 * and answers each {@link ReadSlice} with a {@link SliceResult}; it closes
 * its readers and exits on `{ stop: true }` or when the parent goes away.
 */
import { openReader, type ReadFrom, type TableReader } from '../lib/client/index.ts';

/** What the parent passes on the command line. */
export interface ReaderProcessOptions {
  /** Through the sentinels of master `name`, or to one server's URL. */
  readonly connection: { readonly sentinels: readonly string[]; readonly name: string } | { readonly url: string };
  readonly keyPrefix: string;
  readonly table: string;
  readonly readFrom: ReadFrom;
  /** Concurrent readers in this process, one connection each. */
  readonly readers: number;
  /** Records in the table (keys 1..records). */
  readonly records: number;
  /** Records per range read. */
  readonly pageSize: number;
}

/** Read for `[startAt, endAt)` (ms since the epoch: one clock for every process and the parent's CPU samples). */
export interface ReadSlice {
  readonly startAt: number;
  readonly endAt: number;
}

/** What one process did in a slice. */
export interface SliceResult {
  readonly reads: number;
  readonly records: number;
  /** CPU (user + system) this process used meanwhile, µs. */
  readonly cpuMicros: number;
}

const options = JSON.parse(process.argv[2]!) as ReaderProcessOptions;
const readers: TableReader<Record<string, unknown>>[] = [];
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function readSlice({ startAt, endAt }: ReadSlice): Promise<SliceResult> {
  await delay(startAt - Date.now());
  const cpuBefore = process.cpuUsage();
  const counts = await Promise.all(
    readers.map(async (reader, index) => {
      // A per-reader linear congruential sequence: cheap, and no two readers read the same pages in step.
      let state = (index + 1) * 7_919 + process.pid;
      let reads = 0;
      let records = 0;
      while (Date.now() < endAt) {
        state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
        const first = 1 + (state % (options.records - options.pageSize + 1));
        records += (await reader.range('primary_key', first, first + options.pageSize)).length;
        reads++;
      }
      return { reads, records };
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return {
    reads: counts.reduce((sum, count) => sum + count.reads, 0),
    records: counts.reduce((sum, count) => sum + count.records, 0),
    cpuMicros: cpu.user + cpu.system,
  };
}

async function stop(): Promise<void> {
  await Promise.allSettled(readers.map((reader) => reader.close()));
  process.disconnect?.();
}

const { connection, keyPrefix, table, readFrom } = options;
const where = 'url' in connection ? { url: connection.url } : { sentinel: { sentinels: connection.sentinels, name: connection.name } };
for (let index = 0; index < options.readers; index++) {
  readers.push(await openReader({ ...where, table, keyPrefix, readFrom, timeoutMs: 10_000 }));
}
process.on('message', (message: ReadSlice | { stop: true }) => {
  if ('stop' in message) void stop();
  else void readSlice(message).then((result) => process.send!(result));
});
process.on('disconnect', () => void Promise.allSettled(readers.map((reader) => reader.close())));
process.send!({ ready: true });
