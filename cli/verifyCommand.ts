import { Option, type Command } from 'commander';
import type { TableVerification } from '../daemon/verifyCache.ts';
import type { CliContext } from './cliContext.ts';
import { EXIT_CODES } from './exitCodes.ts';
import { formatTextTable } from './textTable.ts';

interface VerifyCommandOptions {
  readonly config: string;
  readonly table?: string[];
  readonly json?: boolean;
}

function formatVerification(results: readonly TableVerification[]): string {
  const rows = results.map((result) => [
    result.table,
    String(result.postgresRecords),
    result.loaded ? String(result.redisRecords) : 'not loaded',
    String(result.missing),
    String(result.extra),
    String(result.changed),
    result.equal ? 'equal' : 'DIFFERENT',
  ]);
  const lines = [formatTextTable(['TABLE', 'POSTGRES', 'REDIS', 'MISSING', 'EXTRA', 'CHANGED', 'RESULT'], rows)];
  for (const result of results) {
    if (result.differences.length === 0) continue;
    lines.push('', `First differences in ${result.table}:`);
    for (const difference of result.differences) {
      const detail = difference.kind === 'changed' ? ` (columns ${difference.columns.join(', ')})` : '';
      lines.push(`  ${difference.kind.padEnd(7)} ${difference.key}${detail}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

async function verify(context: CliContext, options: VerifyCommandOptions): Promise<number> {
  // Imported here, not at the top: `tablecache --help` should not pay for loading the daemon.
  const [{ loadConfig }, { verifyCache }, { checkConfigAgainstDatabase }, { withPostgresClient }] = await Promise.all([
    import('../daemon/config/loadConfig.ts'),
    import('../daemon/verifyCache.ts'),
    import('../daemon/config/checkConfigAgainstDatabase.ts'),
    import('./postgresConnection.ts'),
  ]);
  const config = await loadConfig(options.config);
  // The same check as `triggers install` and the daemon's start, so a table the database lacks is exit code 2 in each.
  const checked = options.table === undefined ? config : { ...config, tables: config.tables.filter((table) => options.table!.includes(table.name)) };
  await withPostgresClient(config.postgres.url, (client) => checkConfigAgainstDatabase(client, checked));
  const results = await verifyCache(config, options.table === undefined ? {} : { tables: options.table });
  context.out(options.json ? `${JSON.stringify(results, null, 2)}\n` : formatVerification(results));
  return results.every((result) => result.equal) ? EXIT_CODES.ok : EXIT_CODES.checkFailed;
}

/** Adds `tablecache verify`. */
export function addVerifyCommand(program: Command, context: CliContext): void {
  program
    .command('verify')
    .description('compare each cached table in Redis with its query in Postgres; exit 0 only when all are equal')
    .addOption(new Option('-c, --config <file>', 'the configuration file (YAML, JSON, or a JS/TS module)').env('TABLECACHE_CONFIG').makeOptionMandatory())
    .addOption(new Option('-t, --table <name...>', 'only these cached tables'))
    .option('--json', 'print the comparison as JSON')
    .action(context.run(verify));
}
