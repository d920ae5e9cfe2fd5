import { createHash } from 'node:crypto';
import type pg from 'pg';

/** How install and uninstall run their transaction. */
export interface TriggerTransactionOptions {
  /**
   * `lock_timeout` for the transaction, in milliseconds (default 5000). DROP
   * and CREATE TRIGGER lock the source table; waiting behind a long
   * transaction would queue every writer behind the installer, so the
   * installer gives up instead.
   */
  readonly lockTimeoutMs?: number;
  /** Plan and report the statements, then roll back: nothing changes. */
  readonly dryRun?: boolean;
}

/** The default of {@link TriggerTransactionOptions.lockTimeoutMs}. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/**
 * The advisory lock that serialises installers of one trigger schema, as a
 * statement. The key is derived from the schema name here rather than with
 * Postgres' `hashtext`, whose values are not promised across versions.
 */
export function installLockStatement(schema: string): string {
  const key = createHash('sha256').update(`tablecache triggers ${schema}`).digest().readBigInt64BE(0);
  return `SELECT pg_catalog.pg_advisory_xact_lock(${key})`;
}

/**
 * Runs `plan` in one transaction holding the schema's install lock, then runs
 * the statements it returns and commits, or rolls back on error or dry run.
 */
export async function runTriggerTransaction<T extends { readonly statements: readonly string[] }>(
  client: pg.ClientBase,
  schema: string,
  options: TriggerTransactionOptions,
  plan: () => Promise<T>,
): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = ${Math.max(0, Math.round(options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS))}`);
    await client.query(installLockStatement(schema));
    const result = await plan();
    if (!options.dryRun) {
      for (const statement of result.statements) await client.query(statement);
    }
    await client.query(options.dryRun ? 'ROLLBACK' : 'COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
