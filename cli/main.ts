import { Command } from 'commander';
import { createCliContext, type CliContext } from './cliContext.ts';
import { describeFailure, EXIT_CODES } from './exitCodes.ts';
import { addCaptureCommand } from './captureCommand.ts';
import { addDaemonCommand } from './daemonCommand.ts';
import { addTriggersCommand } from './triggersCommand.ts';
import { addVerifyCommand } from './verifyCommand.ts';
import { packageVersion } from './packageVersion.ts';

const EXIT_CODE_HELP = `
Exit codes:
  ${EXIT_CODES.ok}   success (status: every source table current)
  ${EXIT_CODES.checkFailed}   a check failed (status: triggers missing, stale or disabled; verify: the cache differs), or the
      operation was refused for a reason printed (another daemon holds a table, a timeout)
  ${EXIT_CODES.usage}   bad usage or configuration (including tables or columns the database does not have), or a
      package the command needs is not installed
  ${EXIT_CODES.connection}   Postgres or Redis could not be reached, or refused the login
  ${EXIT_CODES.database}   Postgres refused a statement or query (privileges, lock timeout, an error in a configured query)
  ${EXIT_CODES.captureSetup}   Postgres is not set up for the logical capture (wal_level, REPLICATION, replica identity, slot
      headroom): capture install and status name each fix; the daemon, when its slot is gone and cannot be
      created again
  ${EXIT_CODES.internal}  unexpected error (a bug)`;

/** Builds the `tablecache` command tree; command handlers report through `context`. */
export function buildProgram(context: CliContext): Command {
  const program = new Command('tablecache')
    .description('Keep a Postgres result set cached in Redis and correct: set up the change capture (triggers or a logical slot), run the daemon, verify the cache.')
    .version(packageVersion, '-V, --version', 'print the version and exit')
    .configureOutput({ writeOut: (text) => context.out(text), writeErr: (text) => context.err(text) })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText('after', EXIT_CODE_HELP);
  addCaptureCommand(program, context);
  addTriggersCommand(program, context);
  addDaemonCommand(program, context);
  addVerifyCommand(program, context);
  return program;
}

/** Runs the CLI with `argv` (as in `process.argv`) and resolves to the exit code. Never throws. */
export async function main(
  argv: readonly string[],
  out: (text: string) => void = (text) => process.stdout.write(text),
  err: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  const context = createCliContext(out, err);
  try {
    await buildProgram(context).parseAsync(argv as string[]);
    return context.exitCode;
  } catch (error) {
    const failure = describeFailure(error);
    if (failure.message) err(`error: ${failure.message}\n`);
    return failure.exitCode;
  }
}
