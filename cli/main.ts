import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Builds the `tablecache` command tree. Each command resolves to the process exit code. */
export function buildProgram(): Command {
  const program = new Command('tablecache')
    .description('Keep a Postgres result set cached in Redis and correct: install change triggers, run the daemon, verify the cache.')
    .version(packageJson.version, '-V, --version', 'print the version and exit')
    .exitOverride();
  return program;
}

/** Runs the CLI with `argv` (as in `process.argv`) and resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    throw error;
  }
}
