import { createRequire } from 'node:module';
import { CommanderError } from 'commander';
import type pg from 'pg';
import { TablecacheError } from '../lib/core/errors.ts';
import { MISSING_NAME_STATES } from '../daemon/config/configError.ts';
import { missingPackageAdvice } from './missingPackage.ts';

/**
 * Whether `error` is a statement Postgres refused. pg is required here, not
 * imported at the top, so that `tablecache --help` does not load it: an error
 * from pg means pg is loaded already (this is a cache hit), and without pg
 * installed (an optional peer dependency) there is no such error.
 */
function isDatabaseError(error: unknown): error is pg.DatabaseError {
  let DatabaseError: typeof pg.DatabaseError;
  try {
    DatabaseError = (createRequire(import.meta.url)('pg') as typeof pg).DatabaseError;
  } catch {
    return false;
  }
  return error instanceof DatabaseError;
}

/** The CLI's exit codes; the README's table mirrors this. */
export const EXIT_CODES = {
  /** The command did what was asked (status: everything current). */
  ok: 0,
  /**
   * A check failed (status found triggers missing, stale, disabled or not in
   * the config; verify found differences), or tablecache refused the
   * operation for a reason it names (another daemon holds the table, a
   * timeout, data in Redis it cannot read).
   */
  checkFailed: 1,
  /**
   * Bad usage or a bad configuration file, including tables, columns or
   * schemas the database does not have (SQLSTATE 42P01, 42703, 3F000, …):
   * the same in every command, since each checks the configuration against
   * the database first (`checkConfigAgainstDatabase`).
   */
  usage: 2,
  /** Postgres or Redis could not be reached or refused the login (wrong password or user, unknown database: 28P01, 28000, 3D000, WRONGPASS). */
  connection: 3,
  /** Postgres refused a statement or a configured query (privileges, a lock timeout, a syntax error, …). */
  database: 4,
  /**
   * Postgres is not set up for the logical capture (`capture install` and
   * `capture status`): wal_level, a role without REPLICATION, a replica
   * identity that cannot give old keys, no free slot, a slot or publication
   * of that name that is not tablecache's. The message names each fix.
   */
  captureSetup: 5,
  /** A bug: an unexpected error (printed with its stack). */
  internal: 70,
} as const;

const DATABASE_HINTS: Record<string, string> = {
  '42501': 'The role in postgres.url must own the source tables (DROP/CREATE TRIGGER need it) and may need CREATE on the database for the trigger schema.',
  '55P03': 'A source table stayed locked by another transaction past --lock-timeout; retry when it is quieter, or raise --lock-timeout.',
  '57014': 'Creating a replication slot waits for every transaction open at that moment to end; one stayed open past --lock-timeout. Retry when it has ended, or raise --lock-timeout.',
};

/** The message to print and the exit code for an error that ended a command. */
export function describeFailure(error: unknown): { readonly exitCode: number; readonly message: string } {
  if (error instanceof CommanderError) return { exitCode: error.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage, message: '' };
  if (error instanceof TablecacheError) {
    if (error.code === 'TC_CONNECTION_FAILED') return { exitCode: EXIT_CODES.connection, message: error.message };
    if (error.code === 'TC_CONFIG_INVALID' || error.code === 'TC_INVALID_ARGUMENT') return { exitCode: EXIT_CODES.usage, message: error.message };
    if (error.code === 'TC_CAPTURE_SETUP') return { exitCode: EXIT_CODES.captureSetup, message: error.message };
    if (error.code === 'TC_QUERY_FAILED') {
      const missingName = MISSING_NAME_STATES.has((error as { sqlState?: string }).sqlState ?? '');
      return { exitCode: missingName ? EXIT_CODES.usage : EXIT_CODES.database, message: error.message };
    }
    // Every other TablecacheError is raised on purpose with a message for the operator, not a bug.
    return { exitCode: EXIT_CODES.checkFailed, message: error.message };
  }
  // A statement named something the database does not have: the configuration is wrong for it, as checkConfigAgainstDatabase says.
  if (isDatabaseError(error) && MISSING_NAME_STATES.has(error.code ?? '')) {
    return { exitCode: EXIT_CODES.usage, message: `The database does not have what the configuration names: ${error.message} (SQLSTATE ${error.code})` };
  }
  if (isDatabaseError(error)) {
    const hint = error.code === undefined ? undefined : DATABASE_HINTS[error.code];
    return {
      exitCode: EXIT_CODES.database,
      message: `Postgres refused: ${error.message} (SQLSTATE ${error.code ?? 'unknown'})${hint ? `\n${hint}` : ''}`,
    };
  }
  const advice = missingPackageAdvice(error);
  if (advice !== undefined) return { exitCode: EXIT_CODES.usage, message: advice };
  return { exitCode: EXIT_CODES.internal, message: `Unexpected error (a bug in tablecache; please report it): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}` };
}
