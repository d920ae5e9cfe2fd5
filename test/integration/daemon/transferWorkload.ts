import type pg from 'pg';
import type { SeededRandom } from '../../chaos/seededRandom.ts';

/**
 * The bank-transfer workload of issue #12: accounts whose balances always
 * sum to the same total, changed only by transactions of two statements
 * each. A read of the whole cached table that sees a different total or
 * account count has seen part of a transaction (or two snapshots mixed).
 */

/** Options of the transfer workload: where its table lives and how big it is. */
export interface TransferTable {
  /** Schema of the `accounts` table (created by {@link createAccounts}). */
  readonly schema: string;
  /** How many accounts there are, always. */
  readonly accounts: number;
  /** Each account's starting balance. */
  readonly balance: number;
}

/** The sum of all balances, at every commit. */
export function transferTotal(table: TransferTable): number {
  return table.accounts * table.balance;
}

/** The cached table's configuration (`tables.<name>` of a daemon config) for the accounts. */
export function accountsTableConfig(table: TransferTable): Record<string, unknown> {
  return {
    query: `SELECT account_id, balance FROM ${table.schema}.accounts`,
    primaryKey: 'account_id',
    sources: { [`${table.schema}.accounts`]: { key: 'account_id' } },
  };
}

/** (Re)creates the schema with `accounts` accounts `1…accounts`, each holding `balance`. */
export async function createAccounts(pool: pg.Pool, table: TransferTable): Promise<void> {
  await pool.query(`
    DROP SCHEMA IF EXISTS ${table.schema} CASCADE;
    CREATE SCHEMA ${table.schema};
    CREATE TABLE ${table.schema}.accounts (account_id integer PRIMARY KEY, balance integer NOT NULL);
    INSERT INTO ${table.schema}.accounts SELECT i, ${table.balance} FROM generate_series(1, ${table.accounts}) i;
    ANALYZE ${table.schema}.accounts;
  `);
}

/** What the transfer writers did. */
export interface TransferCounts {
  /** Committed transfers (two UPDATEs). */
  transfers: number;
  /** Committed replacements (a DELETE and an INSERT of the same balance under a new id). */
  replacements: number;
  /** Transactions rolled back because a row they needed was gone, or that failed (deadlock, fault). */
  abandoned: number;
  /** When given, per writer the last id it assigned (an INSERT that may or may not have committed). */
  lastIds?: number[];
}

/**
 * Writes until `signal` aborts, one transaction at a time on its own
 * connection: a transfer moves a random amount from one account to another
 * in two UPDATE statements; one time in five, an account is deleted and
 * another inserted with its balance (new ids are `writer × 10^6 + n`). A
 * transaction whose row vanished under it (another writer replaced it) is
 * rolled back, so the total never changes. Shares `ids` (the current account
 * ids) with the other writers of the same process.
 */
export async function runTransferWriter(
  pool: pg.Pool,
  table: TransferTable,
  writer: number,
  ids: number[],
  random: SeededRandom,
  signal: AbortSignal,
  counts: TransferCounts,
  /** A pause after each transaction (default none: as fast as the connection allows). */
  pauseMs = 0,
): Promise<void> {
  const accounts = `${table.schema}.accounts`;
  let nextId = (writer + 1) * 1_000_000;
  while (!signal.aborted) {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch {
      counts.abandoned++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const replace = random.next() < 0.2;
      let committed = false;
      if (replace) {
        const slot = random.int(0, ids.length - 1);
        const old = ids[slot]!;
        const deleted = await client.query<{ balance: number }>(`DELETE FROM ${accounts} WHERE account_id = $1 RETURNING balance`, [old]);
        if (deleted.rowCount === 1) {
          const id = ++nextId;
          if (counts.lastIds !== undefined) counts.lastIds[writer] = id;
          await client.query(`INSERT INTO ${accounts} VALUES ($1, $2)`, [id, deleted.rows[0]!.balance]);
          await client.query('COMMIT');
          // Only the writer whose DELETE found the row gets here, so the slot still holds `old`.
          ids[slot] = id;
          counts.replacements++;
          committed = true;
        }
      } else {
        const [from, to] = random.shuffle(ids).slice(0, 2) as [number, number];
        const amount = random.int(1, 50);
        // Lower id first, so two writers never wait for each other in a cycle.
        const [first, second] = from < to ? [[from, -amount], [to, amount]] : [[to, amount], [from, -amount]];
        const a = await client.query(`UPDATE ${accounts} SET balance = balance + $2 WHERE account_id = $1`, first);
        const b = await client.query(`UPDATE ${accounts} SET balance = balance + $2 WHERE account_id = $1`, second);
        if (a.rowCount === 1 && b.rowCount === 1) {
          await client.query('COMMIT');
          counts.transfers++;
          committed = true;
        }
      }
      if (!committed) {
        await client.query('ROLLBACK');
        counts.abandoned++;
      }
    } catch (error) {
      counts.abandoned++;
      broken = error instanceof Error ? error : new Error(String(error));
    } finally {
      client.release(broken);
    }
    // A failed transaction pauses too, so that a server outage is not a busy loop.
    if (pauseMs > 0 || broken !== undefined) await new Promise((resolve) => setTimeout(resolve, Math.max(pauseMs, broken === undefined ? 0 : 50)));
  }
}

/** What one whole-table read saw, against the invariant. */
export interface TransferReadCheck {
  readonly count: number;
  readonly total: number;
  readonly ok: boolean;
}

/** Checks a whole-table read of the accounts: exactly `accounts` records, balances summing to the total. */
export function checkTransferRead(table: TransferTable, records: readonly Record<string, unknown>[]): TransferReadCheck {
  let total = 0;
  for (const record of records) total += Number(record['balance']);
  return { count: records.length, total, ok: records.length === table.accounts && total === transferTotal(table) };
}
