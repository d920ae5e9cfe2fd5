/**
 * Record codecs for Redis, on rows shaped like the seed join and on rows
 * carrying every type pg returns: JSON with type tags (bigint, Date, Buffer
 * would not survive plain JSON) against MessagePack (msgpackr, the shipped
 * MessagePackRecordCodec). Plain JSON, which loses those types, is the
 * baseline for the seed rows (they have none of them).
 */
import { performance } from 'node:perf_hooks';
import { MessagePackRecordCodec } from '../lib/redis/recordCodec.ts';
import type { BenchContext } from './benchContext.ts';
import { joinedUsers } from './redisLoad.bench.ts';

const ROWS = 100_000;
const ROUNDS = 3;

type Row = Record<string, unknown>;

interface Candidate {
  readonly name: string;
  encode(row: Row): Buffer;
  decode(bytes: Buffer): Row;
}

function taggingReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const original = this[key];
  if (typeof original === 'bigint') return { $bigint: original.toString() };
  if (original instanceof Date) return { $date: original.getTime() };
  if (Buffer.isBuffer(original)) return { $bytes: original.toString('base64') };
  return value;
}

function taggingReviver(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const tagged = value as Record<string, unknown>;
  if (typeof tagged.$bigint === 'string') return BigInt(tagged.$bigint);
  if (typeof tagged.$date === 'number') return new Date(tagged.$date);
  if (typeof tagged.$bytes === 'string') return Buffer.from(tagged.$bytes, 'base64');
  return value;
}

const messagePack = new MessagePackRecordCodec<Row>();
const CANDIDATES: Candidate[] = [
  { name: 'JSON, no types (baseline)', encode: (row) => Buffer.from(JSON.stringify(row)), decode: (bytes) => JSON.parse(bytes.toString()) as Row },
  {
    name: 'JSON with type tags',
    encode: (row) => Buffer.from(JSON.stringify(row, taggingReplacer)),
    decode: (bytes) => JSON.parse(bytes.toString(), taggingReviver) as Row,
  },
  { name: 'MessagePack (msgpackr, shipped)', encode: (row) => messagePack.encode(row), decode: (bytes) => messagePack.decode(bytes) },
];

function pgRows(count: number): Row[] {
  return Array.from({ length: count }, (_, i) => ({
    id: i,
    active: i % 2 === 0,
    amount: '12345.67',
    int8: BigInt(i) * 1_000_000_007n,
    created: new Date(1_700_000_000_000 + i * 1000),
    tags: ['a', 'b'],
    payload: { k: i, v: [1, 2, 3], s: 'text' },
    raw: Buffer.from([i & 255, 1, 2, 3]),
    note: null,
    ratio: i / 7,
  }));
}

function measure(candidate: Candidate, rows: readonly Row[], rounds: number): { encodePerSecond: number; decodePerSecond: number; bytes: number } {
  for (const row of rows.slice(0, 10_000)) candidate.decode(candidate.encode(row));
  let encodeSeconds = Infinity;
  let decodeSeconds = Infinity;
  let encoded: Buffer[] = [];
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    encoded = rows.map((row) => candidate.encode(row));
    encodeSeconds = Math.min(encodeSeconds, (performance.now() - started) / 1000);
    started = performance.now();
    for (const bytes of encoded) candidate.decode(bytes);
    decodeSeconds = Math.min(decodeSeconds, (performance.now() - started) / 1000);
  }
  const bytes = encoded.reduce((sum, buffer) => sum + buffer.length, 0) / encoded.length;
  return { encodePerSecond: rows.length / encodeSeconds, decodePerSecond: rows.length / decodeSeconds, bytes };
}

export async function run(context: BenchContext): Promise<void> {
  const rounds = ROUNDS;
  const sets: [string, Row[], Candidate[]][] = [
    ['seed join rows (int, text, null)', [...joinedUsers(ROWS)] as unknown as Row[], CANDIDATES],
    ['rows with every pg type (bigint, Date, Buffer, JSON, arrays)', pgRows(ROWS), CANDIDATES.slice(1)],
  ];
  for (const [title, rows, candidates] of sets) {
    const results = candidates.map((candidate) => ({ candidate, ...measure(candidate, rows, rounds) }));
    const baseline = results[0]!;
    context.printTable(
      `Record codecs on ${ROWS.toLocaleString('en')} ${title} (best of ${rounds})`,
      ['codec', 'encode rows/s', 'decode rows/s', 'bytes/row', `encode vs ${baseline.candidate.name}`, 'decode vs same', 'size vs same'],
      results.map((result) => [
        result.candidate.name,
        Math.round(result.encodePerSecond),
        Math.round(result.decodePerSecond),
        result.bytes.toFixed(1),
        (result.encodePerSecond / baseline.encodePerSecond).toFixed(2),
        (result.decodePerSecond / baseline.decodePerSecond).toFixed(2),
        (result.bytes / baseline.bytes).toFixed(2),
      ]),
    );
  }
}
