import { execFile } from 'node:child_process';

/** What one pgbench run reports. */
export interface PgbenchResult {
  /** Transactions per second, without the initial connection time. */
  readonly tps: number;
  /** Transactions actually processed. */
  readonly transactions: number;
}

/**
 * Runs `pgbench -n -M prepared` with `writers` clients for `seconds` on the
 * script file `script` against the database of `url` (pgbench must be on the
 * PATH; it ships with the Postgres client tools); with `rate`, paced at that
 * many transactions per second over all clients (`-R`), else as fast as they go.
 */
export function runPgbench(url: string, script: string, writers: number, seconds: number, rate?: number): Promise<PgbenchResult> {
  const parsed = new URL(url);
  const args = [
    '-n',
    '-M', 'prepared',
    '-c', String(writers),
    '-j', String(Math.min(writers, 2)),
    '-T', String(seconds),
    '-f', script,
    ...(rate === undefined ? [] : ['-R', String(rate)]),
    '-h', parsed.hostname,
    '-p', parsed.port || '5432',
    '-U', decodeURIComponent(parsed.username) || 'postgres',
    decodeURIComponent(parsed.pathname.slice(1)),
  ];
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(parsed.password) };
  return new Promise((resolve, reject) => {
    execFile('pgbench', args, { env, timeout: (seconds + 60) * 1000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`pgbench failed (is it installed? it ships with the Postgres client tools): ${error.message}\n${stderr}`));
        return;
      }
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
      const transactions = /number of transactions actually processed: (\d+)/.exec(stdout);
      if (!tps || !transactions) reject(new Error(`Could not read tps and transactions from pgbench output:\n${stdout}`));
      else resolve({ tps: Number(tps[1]), transactions: Number(transactions[1]) });
    });
  });
}
