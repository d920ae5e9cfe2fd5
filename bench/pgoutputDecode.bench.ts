/**
 * The daemon's receive path on the logical slot, per single-row
 * transaction (BEGIN, UPDATE of a 3-column row, COMMIT), in memory: decoding
 * the pgoutput messages with PgoutputDecoder against pg-logical-replication's
 * own parser (which the daemon used before, then parsing the positions it
 * printed back from text), and the whole path to the queue (decoding,
 * PgoutputTransactions, ChangeQueue; a new queue every 50 transactions, as
 * the daemon's steps take them). CPU time per transaction, rounds
 * alternated. TABLECACHE_BENCH_ROUNDS (default 5) and
 * TABLECACHE_BENCH_TRANSACTIONS per round (default 50,000).
 */
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { ChangeQueue } from '../daemon/changeQueue.ts';
import { fullXid, parseLsn } from '../daemon/logical/lsn.ts';
import { PgoutputDecoder } from '../daemon/logical/pgoutputDecoder.ts';
import { PgoutputTransactions } from '../daemon/logical/pgoutputTransactions.ts';
import type { BenchContext } from './benchContext.ts';
import { median } from './benchTable.ts';

const uint32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value >>> 0);
  return buffer;
};
const uint16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
const cString = (value: string) => Buffer.concat([Buffer.from(value), Buffer.from([0])]);
const textValue = (value: string) => Buffer.concat([Buffer.from('t'), uint32(Buffer.byteLength(value)), Buffer.from(value)]);

/** The stream's messages for `count` transactions, each an XLogData payload after its header, with the header's position. */
function transactions(count: number): { relation: Buffer; messages: { lsn: string; body: Buffer }[] } {
  const relation = Buffer.concat([
    Buffer.from('R'), uint32(16384), cString('public'), cString('bench_users'), Buffer.from('d'), uint16(3),
    Buffer.from([1]), cString('user_id'), uint32(23), uint32(-1),
    Buffer.from([0]), cString('name'), uint32(25), uint32(-1),
    Buffer.from([0]), cString('counter'), uint32(23), uint32(-1),
  ]); // prettier-ignore
  const messages: { lsn: string; body: Buffer }[] = [];
  const lsnText = (lsn: number) => `0/${lsn.toString(16).toUpperCase()}`;
  for (let i = 0; i < count; i++) {
    const lsn = 0x1000000 + i * 300;
    const id = String(1 + ((i * 7919) % 100_000));
    messages.push(
      { lsn: lsnText(lsn), body: Buffer.concat([Buffer.from('B'), uint32(0), uint32(lsn + 200), uint32(0x2b4c3), uint32(0x12345678), uint32(5000 + i)]) },
      { lsn: lsnText(lsn + 50), body: Buffer.concat([Buffer.from('U'), uint32(16384), Buffer.from('N'), uint16(3), textValue(id), textValue(`user ${id}`), textValue('17')]) },
      { lsn: lsnText(lsn + 200), body: Buffer.concat([Buffer.from('C'), Buffer.from([0]), uint32(0), uint32(lsn + 200), uint32(0), uint32(lsn + 260), uint32(0x2b4c3), uint32(0x12345678)]) },
    );
  }
  return { relation, messages };
}

const SOURCES = [{ schema: 'public', table: 'bench_users', keyColumns: ['user_id'] }];
/** Transactions per step of the daemon under 8 writers (logicalDecoding.bench.ts measured 30 to 50). */
const STEP_ROWS = 50;

/** CPU µs per transaction of `work` over every message. */
function cpuPerTransaction(count: number, work: () => void): number {
  const start = process.cpuUsage();
  work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

/** Measures and prints the table (see the file comment). */
export async function run(context: BenchContext): Promise<void> {
  const rounds = Number(process.env.TABLECACHE_BENCH_ROUNDS ?? 5);
  const count = Number(process.env.TABLECACHE_BENCH_TRANSACTIONS ?? 50_000);
  const { relation, messages } = transactions(count);
  const library = new PgoutputPlugin({ protoVersion: 1, publicationNames: ['p'], messages: true });
  library.parse(relation);
  let sink = 0n;
  const variants: [string, () => void][] = [
    [
      "pg-logical-replication's parser, positions parsed back from text (before)",
      () => {
        for (const { lsn, body } of messages) {
          const message = library.parse(body) as Pgoutput.Message;
          sink += parseLsn(lsn);
          if (message.tag === 'commit') sink += parseLsn(message.commitLsn!) + parseLsn(message.commitEndLsn!);
        }
      },
    ],
    [
      'PgoutputDecoder',
      () => {
        const decoder = new PgoutputDecoder(() => new Set(['user_id']));
        decoder.decode(relation);
        for (const { body } of messages) {
          const message = decoder.decode(body);
          if (message.tag === 'commit') sink += message.endLsn;
        }
      },
    ],
    [
      'PgoutputDecoder + PgoutputTransactions + ChangeQueue (the daemon up to its queue)',
      () => {
        const assembler = new PgoutputTransactions({ sources: SOURCES, maxKeys: 10_000, xidText: (xid) => fullXid(xid, 5000n).toString() });
        const decoder = new PgoutputDecoder((schema, table) => assembler.columnsOf(schema, table));
        let queue = new ChangeQueue();
        let queued = 0;
        decoder.decode(relation);
        for (const { body } of messages) {
          const outcome = assembler.take(decoder.decode(body));
          if (outcome === null || !('xid' in outcome)) continue;
          for (const payload of outcome.payloads) queue.addChange(payload, outcome.commitLsn);
          // A queue holding every change of the run would measure its growth and the collector's old space instead.
          if (++queued % STEP_ROWS === 0) queue = new ChangeQueue();
        }
      },
    ],
  ];
  const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, work] of round % 2 === 0 ? variants : [...variants].reverse()) results.get(name)!.push(cpuPerTransaction(count, work));
  }
  const baseline = median(results.get(variants[0]![0])!);
  context.printTable(
    `The receive path per single-row transaction (BEGIN, UPDATE of 3 columns, COMMIT), ${count.toLocaleString('en')} transactions, ${rounds} rounds; medians (${sink > 0n ? 'checked' : ''})`,
    ['variant', 'CPU µs per transaction', 'ratio to the library parser'],
    variants.map(([name]) => [name, median(results.get(name)!), (median(results.get(name)!) / baseline).toFixed(2)]),
  );
}
