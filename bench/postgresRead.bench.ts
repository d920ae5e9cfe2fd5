/**
 * Streams 1,000,000 joined rows of the seed schema (users, cities,
 * users_cities) through PostgresAccess, against the same query read with a
 * plain pg-cursor loop in the same run: what the snapshot transaction, the
 * exact type parsers and the async generator cost per row.
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import { QueryArgsDbRecordsSpec } from '../lib/core/dbAccess.ts';
import { DEFAULT_BATCH_SIZE, PostgresAccess } from '../lib/postgres/index.ts';
import type { BenchContext } from './benchContext.ts';
import { elapsedMs, mebibytes, median, opsPerSecond, processPeakRssBytes, sampleRss } from './benchTable.ts';
import { JOINED_USERS_QUERY, seedJoinedUsers } from './seedDatabase.ts';

const ROWS = 1_000_000;
const CITIES = 1_000;
// Alternating rounds spread JIT warm-up and background noise over both readers.
const ROUNDS = 3;

interface Pass {
  rowsPerSecond: number;
  peakRssBytes: number;
}

/** Times one full read, which returns its row count and user_id sum so that a short read cannot pass as a fast one. */
async function timePass(read: () => Promise<{ rows: number; checksum: number }>): Promise<Pass> {
  const sampler = sampleRss();
  const started = performance.now();
  const { rows, checksum } = await read();
  const ms = elapsedMs(started);
  const { peakBytes } = sampler.stop();
  if (rows !== ROWS || checksum !== (ROWS * (ROWS + 1)) / 2) {
    throw new Error(`A pass read ${rows} rows with user_id sum ${checksum}; expected ${ROWS} rows summing to ${(ROWS * (ROWS + 1)) / 2}.`);
  }
  return { rowsPerSecond: opsPerSecond(rows, ms), peakRssBytes: peakBytes };
}

async function readWithPlainCursor(client: pg.Client): Promise<{ rows: number; checksum: number }> {
  const cursor = client.query(new Cursor<{ user_id: number }>(JOINED_USERS_QUERY));
  let rows = 0;
  let checksum = 0;
  for (;;) {
    const batch = await cursor.read(DEFAULT_BATCH_SIZE);
    if (batch.length === 0) break;
    for (const row of batch) {
      rows++;
      checksum += row.user_id;
    }
  }
  await cursor.close();
  return { rows, checksum };
}

async function readWholeResult(client: pg.Client): Promise<{ rows: number; checksum: number }> {
  const { rows } = await client.query<{ user_id: number }>(JOINED_USERS_QUERY);
  let checksum = 0;
  for (const row of rows) checksum += row.user_id;
  return { rows: rows.length, checksum };
}

async function readWithPostgresAccess(access: PostgresAccess): Promise<{ rows: number; checksum: number }> {
  let rows = 0;
  let checksum = 0;
  for await (const row of access.getRecords(new QueryArgsDbRecordsSpec(JOINED_USERS_QUERY, []))) {
    rows++;
    checksum += row.user_id as number;
  }
  return { rows, checksum };
}

/** Benchmarks PostgresAccess.getRecords against a plain pg-cursor loop on 1,000,000 joined rows. */
export async function run(context: BenchContext): Promise<void> {
  await using db = await context.createDatabase('postgres_read');
  context.note(`seeding ${ROWS.toLocaleString('en-US')} users in ${CITIES} cities`);
  const seedStarted = performance.now();
  await seedJoinedUsers(db.url, { users: ROWS, cities: CITIES });
  context.note(`seeded in ${(elapsedMs(seedStarted) / 1000).toFixed(1)} s`);

  const baselineClient = new pg.Client({ connectionString: db.url });
  await baselineClient.connect();
  await using access = new PostgresAccess({ connectionString: db.url, max: 1 });
  // Both readers start with an open connection: connecting is not what is measured.
  for await (const _ of access.getRecords(new QueryArgsDbRecordsSpec('SELECT 1', [])));
  const baseline: Pass[] = [];
  const measured: Pass[] = [];
  let whole: Pass;
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      baseline.push(await timePass(() => readWithPlainCursor(baselineClient)));
      measured.push(await timePass(() => readWithPostgresAccess(access)));
      context.note(`round ${round}/${ROUNDS} done`);
    }
    // Last and once: the whole result as one array raises the process' RSS
    // for good, which would blur the streaming readers' peaks after it.
    whole = await timePass(() => readWholeResult(baselineClient));
  } finally {
    await baselineClient.end();
  }

  const summary = (passes: Pass[]) => ({
    median: median(passes.map((p) => p.rowsPerSecond)),
    best: Math.max(...passes.map((p) => p.rowsPerSecond)),
    peakRss: mebibytes(Math.max(...passes.map((p) => p.peakRssBytes))),
  });
  const base = summary(baseline);
  const ours = summary(measured);
  context.printTable(
    `Streaming ${ROWS.toLocaleString('en-US')} joined rows (batch ${DEFAULT_BATCH_SIZE}, ${ROUNDS} alternating rounds each)`,
    ['reader', 'median rows/s', 'best rows/s', 'peak RSS during reads (MiB)'],
    [
      ['baseline: plain pg-cursor loop', Math.round(base.median), Math.round(base.best), base.peakRss],
      ['PostgresAccess.getRecords', Math.round(ours.median), Math.round(ours.best), ours.peakRss],
      ['ratio PostgresAccess / baseline', ours.median / base.median, ours.best / base.best, ours.peakRss / base.peakRss],
      ['reference: client.query, whole result in one array (1 pass)', Math.round(whole.rowsPerSecond), null, mebibytes(whole.peakRssBytes)],
    ],
  );
  context.note(`process peak RSS (whole run): ${mebibytes(processPeakRssBytes()).toFixed(0)} MiB`);
}
