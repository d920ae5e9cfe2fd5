/**
 * Write throughput of a source table without and with the change triggers, in
 * one run: pgbench with 1 and 8 writers doing single-row UPDATEs, and one
 * 100,000-row UPDATE. A LISTEN session consumes the notifications, as the
 * daemon would.
 *
 * Besides the shipped NOTIFY-payload trigger (also with a `columns` filter
 * for the bulk UPDATE) it measures references: an empty statement trigger with
 * the same transition tables (the floor of any transition-table design), and
 * two probes of the change-table design: the shipped trigger body with each
 * pg_notify(payload) replaced by an INSERT of the payload into an UNLOGGED
 * change table (no index), and a lean body that inserts one row of keys per
 * statement (a table has no 8000-byte limit, so nothing to split). Both ring
 * a NOTIFY doorbell only while the consumer has armed it; under load it is
 * busy draining with DELETE … RETURNING, so the bell stays silent. A last
 * table gives each trigger's CPU per statement, measured in one session
 * without commits: stable even on a busy machine. See docs/triggers.md,
 * "Write cost".
 *
 * Settings (environment): TABLECACHE_BENCH_POSTGRES_URL (default: the local
 * test server), TABLECACHE_BENCH_SECONDS per pgbench run (default 3),
 * TABLECACHE_BENCH_ROUNDS rounds (default 8); each round runs every variant
 * back to back, ratios are taken within a round, medians are reported.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { installTriggers, installTriggersScript } from '../sql-triggers/installTriggers.ts';
import { uninstallTriggers } from '../sql-triggers/uninstallTriggers.ts';
import type { SourceTableSpec } from '../sql-triggers/triggerSpec.ts';
import { runPgbench } from './pgbench.ts';

/** What the bench runner hands every benchmark. */
export interface BenchContext {
  printTable(title: string, columns: string[], rows: (string | number)[][]): void;
}

const ROWS = 100_000;
const CHANNEL = 'tablecache_changes';
const SOURCE: SourceTableSpec = { schema: 'public', table: 'bench_users', keyColumns: ['user_id'] };
const FILTERED_SOURCE: SourceTableSpec = { ...SOURCE, columns: ['name'] };
const WRITER_COUNTS = [1, 8];

type Variant = 'none' | 'emptyTrigger' | 'notify' | 'notifyFiltered' | 'changeTable' | 'leanChangeTable';
const VARIANT_NAMES: Record<Variant, string> = {
  none: 'no trigger',
  emptyTrigger: 'empty trigger, same transition tables',
  notify: 'NOTIFY-payload trigger (shipped)',
  notifyFiltered: 'NOTIFY-payload trigger, `columns` filter',
  changeTable: 'change-table probe: shipped body, INSERT for NOTIFY',
  leanChangeTable: 'change-table probe: lean body (design proposal)',
};

function settings() {
  return {
    url: process.env.TABLECACHE_BENCH_POSTGRES_URL ?? process.env.TABLECACHE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    seconds: Number(process.env.TABLECACHE_BENCH_SECONDS ?? 3),
    rounds: Number(process.env.TABLECACHE_BENCH_ROUNDS ?? 8),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const PROBE_SCHEMA_SQL = `
  CREATE SCHEMA bench_probe;
  CREATE UNLOGGED TABLE bench_probe.changes (payload text NOT NULL);
  CREATE TABLE bench_probe.doorbell (armed boolean NOT NULL);
  INSERT INTO bench_probe.doorbell VALUES (false);
  CREATE FUNCTION bench_probe.nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
  -- A change table needs no payload limit, so no splitting: one row per
  -- statement with its new and old keys, and the bell.
  CREATE FUNCTION bench_probe.log_keys() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
  BEGIN
    INSERT INTO bench_probe.changes (payload)
      SELECT json_build_object('t', 'public.bench_users', 'op', left(TG_OP, 1), 'xid', pg_current_xact_id(), 'k', json_agg(user_id))::text
      FROM (SELECT user_id FROM tc_new_rows UNION SELECT user_id FROM tc_old_rows) AS keys;
    PERFORM pg_notify('${CHANNEL}', 'ring') FROM bench_probe.doorbell WHERE armed;
    RETURN NULL;
  END $$;
`;

/**
 * The shipped install script with every `PERFORM pg_notify(channel, payload);`
 * (one per line in the generated body) turned into an insert of the payload
 * plus a doorbell NOTIFY that fires only while the consumer has armed it.
 */
function changeTableProbeScript(): string {
  const script = installTriggersScript({ schema: 'tablecache', channel: CHANNEL, sources: [SOURCE] });
  const notify = new RegExp(`PERFORM pg_notify\\('${CHANNEL}', (.*)\\);$`, 'gm');
  const probe = script.replace(
    notify,
    `INSERT INTO bench_probe.changes (payload) VALUES ($1); PERFORM pg_notify('${CHANNEL}', 'ring') FROM bench_probe.doorbell WHERE armed;`,
  );
  if (probe === script) throw new Error('The probe found no pg_notify call to replace in the generated trigger.');
  return probe;
}

async function setVariant(pool: pg.Pool, variant: Variant): Promise<void> {
  const client = await pool.connect();
  try {
    await uninstallTriggers(client, { schema: 'tablecache', channel: CHANNEL });
    await client.query('DROP TRIGGER IF EXISTS bench_empty ON bench_users; DROP TRIGGER IF EXISTS bench_lean ON bench_users');
    if (variant === 'notify' || variant === 'notifyFiltered') {
      const source = variant === 'notify' ? SOURCE : FILTERED_SOURCE;
      await installTriggers(client, { schema: 'tablecache', channel: CHANNEL, sources: [source] });
    }
    if (variant === 'changeTable') await client.query(`BEGIN; ${changeTableProbeScript()} COMMIT;`);
    if (variant === 'leanChangeTable') {
      await client.query(
        `CREATE TRIGGER bench_lean AFTER UPDATE ON bench_users REFERENCING OLD TABLE AS tc_old_rows NEW TABLE AS tc_new_rows
         FOR EACH STATEMENT EXECUTE FUNCTION bench_probe.log_keys()`,
      );
    }
    if (variant === 'emptyTrigger') {
      await client.query(
        `CREATE TRIGGER bench_empty AFTER UPDATE ON bench_users REFERENCING OLD TABLE AS tc_old_rows NEW TABLE AS tc_new_rows
         FOR EACH STATEMENT EXECUTE FUNCTION bench_probe.nothing()`,
      );
    }
    await client.query('VACUUM ANALYZE bench_users');
  } finally {
    client.release();
  }
}

/** The daemon's side during a run: LISTEN, and drain the probe's change table every 10 ms. */
async function startConsumer(url: string): Promise<{ stop(): Promise<{ notifications: number; drainedRows: number }> }> {
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  let notifications = 0;
  listener.on('notification', () => {
    notifications += 1;
  });
  await listener.query(`LISTEN ${CHANNEL}`);
  const drainer = new pg.Client({ connectionString: url });
  await drainer.connect();
  let drainedRows = 0;
  let running = true;
  const draining = (async () => {
    while (running) {
      // Deleting what this snapshot sees takes exactly the committed rows:
      // rows of transactions still in flight stay for the next round.
      const result = await drainer.query('DELETE FROM bench_probe.changes RETURNING payload');
      drainedRows += result.rowCount ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await draining;
      await listener.end();
      await drainer.end();
      return { notifications, drainedRows };
    },
  };
}

function pgbench(url: string, script: string, writers: number, seconds: number): Promise<number> {
  return runPgbench(url, script, writers, seconds).then((result) => result.tps);
}

async function bulkUpdateMs(pool: pg.Pool): Promise<number> {
  const start = performance.now();
  await pool.query('UPDATE bench_users SET counter = counter + 1');
  return performance.now() - start;
}

const LOOP_STATEMENTS = 20_000;

/**
 * Microseconds per single-row UPDATE statement in one session, inside one
 * transaction that is rolled back: the trigger's own CPU cost, free of commit
 * and lock waits (and so of most of a busy neighbour's noise).
 */
async function statementMicros(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  const loop = (count: number) =>
    `DO $$ BEGIN FOR i IN 1..${count} LOOP UPDATE bench_users SET counter = counter + 1 WHERE user_id = 1 + i % ${ROWS}; END LOOP; END $$`;
  try {
    await client.query('BEGIN');
    await client.query(loop(1000));
    const start = performance.now();
    await client.query(loop(LOOP_STATEMENTS));
    return ((performance.now() - start) * 1000) / LOOP_STATEMENTS;
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

/** The throughput lost at `ratio` of the baseline, as a percentage. */
function loss(ratio: number): string {
  return `${Math.round((1 - ratio) * 100)}%`;
}

/** Measures and prints the tables (see the file comment). */
export async function run(context: BenchContext): Promise<void> {
  const { url, seconds, rounds } = settings();
  const database = `tc_bench_triggers_${randomBytes(4).toString('hex')}`;
  await adminQuery(url, `CREATE DATABASE ${database}`);
  const databaseUrl = withDatabase(url, database);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const scriptDirectory = mkdtempSync(path.join(tmpdir(), 'tablecache-bench-'));
  try {
    await pool.query(`
      CREATE TABLE bench_users (user_id integer PRIMARY KEY, name text NOT NULL, counter integer NOT NULL DEFAULT 0);
      INSERT INTO bench_users (user_id, name) SELECT g, 'user ' || g FROM generate_series(1, ${ROWS}) AS g;
      ${PROBE_SCHEMA_SQL}`);
    const script = path.join(scriptDirectory, 'update.sql');
    writeFileSync(script, `\\set id random(1, ${ROWS})\nUPDATE bench_users SET counter = counter + 1 WHERE user_id = :id;\n`);

    // Warm-up, not measured: caches, plans, the first full-page writes.
    await pgbench(databaseUrl, script, 8, Math.min(seconds, 3));

    // Each round measures the variants back to back, and the ratios are taken
    // within a round: a neighbour's load drifts slowly, so adjacent runs see
    // about the same machine while rounds may not.
    const writeVariants: Variant[] = ['none', 'notify', 'changeTable', 'leanChangeTable'];
    const tps = new Map<string, number[]>();
    const ratios = new Map<string, number[]>();
    const delivered = new Map<Variant, { notifications: number; drainedRows: number }>();
    const record = (map: Map<string, number[]>, key: string, value: number) => map.set(key, [...(map.get(key) ?? []), value]);
    for (let round = 0; round < rounds; round++) {
      for (const writers of WRITER_COUNTS) {
        const results = new Map<Variant, number>();
        for (const variant of writeVariants) {
          await setVariant(pool, variant);
          const consumer = await startConsumer(databaseUrl);
          results.set(variant, await pgbench(databaseUrl, script, writers, seconds));
          delivered.set(variant, await consumer.stop());
          record(tps, `${variant}/${writers}`, results.get(variant)!);
        }
        for (const variant of writeVariants) record(ratios, `${variant}/${writers}`, results.get(variant)! / results.get('none')!);
      }
    }

    const bulkVariants: Variant[] = ['none', 'emptyTrigger', 'notify', 'notifyFiltered', 'changeTable', 'leanChangeTable'];
    const bulkMs = new Map<string, number[]>();
    const bulkRatios = new Map<string, number[]>();
    // A bulk UPDATE takes a fraction of a second: three times the rounds.
    for (let round = 0; round < rounds * 3; round++) {
      const results = new Map<Variant, number>();
      for (const variant of bulkVariants) {
        await setVariant(pool, variant);
        const consumer = await startConsumer(databaseUrl);
        results.set(variant, await bulkUpdateMs(pool));
        await consumer.stop();
        record(bulkMs, variant, results.get(variant)!);
      }
      for (const variant of bulkVariants) record(bulkRatios, variant, results.get(variant)! / results.get('none')!);
    }

    const cpuVariants: Variant[] = ['none', 'emptyTrigger', 'notify', 'notifyFiltered', 'changeTable', 'leanChangeTable'];
    const micros = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const variant of cpuVariants) {
        await setVariant(pool, variant);
        record(micros, variant, await statementMicros(pool));
      }
    }

    const tpsOf = (variant: Variant, writers: number) => Math.round(median(tps.get(`${variant}/${writers}`)!));
    const ratioOf = (variant: Variant, writers: number) => median(ratios.get(`${variant}/${writers}`)!);
    context.printTable(
      `Single-row UPDATEs on a ${ROWS.toLocaleString('en')}-row table (pgbench, ${seconds} s per run, ${rounds} rounds; medians, ratios taken within a round)`,
      ['variant', ...WRITER_COUNTS.flatMap((writers) => [`${writers} writer(s) tps`, 'ratio', 'loss'])],
      writeVariants.map((variant) => [
        VARIANT_NAMES[variant],
        ...WRITER_COUNTS.flatMap((writers) => [tpsOf(variant, writers), ratioOf(variant, writers).toFixed(2), loss(ratioOf(variant, writers))]),
      ]),
    );
    const extra = (variant: Variant) => median(bulkRatios.get(variant)!) - 1;
    context.printTable(
      `One UPDATE of all ${ROWS.toLocaleString('en')} rows (${rounds * 3} rounds; medians, ratios taken within a round)`,
      ['variant', 'ms', 'ratio to no trigger', 'extra time'],
      bulkVariants.map((variant) => [VARIANT_NAMES[variant], Math.round(median(bulkMs.get(variant)!)), (1 + extra(variant)).toFixed(2), `${Math.round(extra(variant) * 100)}%`]),
    );
    const baseMicros = Math.min(...micros.get('none')!);
    context.printTable(
      `CPU per single-row UPDATE statement, one session, ${LOOP_STATEMENTS.toLocaleString('en')} statements in a rolled-back transaction (best of ${rounds})`,
      ['variant', 'µs per statement', 'added by the trigger, µs'],
      cpuVariants.map((variant) => {
        const best = Math.min(...micros.get(variant)!);
        return [VARIANT_NAMES[variant], best.toFixed(1), (best - baseMicros).toFixed(1)];
      }),
    );
    const met = (ok: boolean) => (ok ? 'yes' : 'no');
    const designs: Variant[] = ['notify', 'changeTable', 'leanChangeTable'];
    context.printTable(
      'Targets (issue 4)',
      ['variant', 'loss with 8 writers (target ≤ 25%)', 'met', 'extra time, 100,000-row UPDATE (target ≤ 10%)', 'met'],
      designs.map((variant) => [
        VARIANT_NAMES[variant],
        loss(ratioOf(variant, 8)),
        met(ratioOf(variant, 8) >= 0.75),
        `${Math.round(extra(variant) * 100)}%`,
        met(extra(variant) <= 0.1),
      ]),
    );
    context.printTable(
      'Delivery in the last 8-writer run (sanity: the consumer kept up)',
      ['variant', 'notifications received', 'change rows drained'],
      designs.map((variant) => [VARIANT_NAMES[variant], delivered.get(variant)?.notifications ?? 0, delivered.get(variant)?.drainedRows ?? 0]),
    );
  } finally {
    rmSync(scriptDirectory, { recursive: true, force: true });
    await pool.end();
    await adminQuery(url, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
}

function printMarkdownTable(title: string, columns: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${columns.join(' | ')} |`);
  console.log(`|${columns.map(() => ' --- ').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ printTable: printMarkdownTable });
}
