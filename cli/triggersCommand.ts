import { Option, type Command } from 'commander';
import type pg from 'pg';
import { ConfigError } from '../daemon/config/configError.ts';
import type { ConfigQueryError, TablecacheConfig } from '../daemon/config/index.ts';
import type { TriggerStatus } from '../sql-triggers/index.ts';
import { DEFAULT_LOCK_TIMEOUT_MS, installLockStatement } from '../sql-triggers/triggerTransaction.ts';
import type { CliContext } from './cliContext.ts';
import { describeFailure, EXIT_CODES } from './exitCodes.ts';
import { formatTextTable } from './textTable.ts';

/**
 * What the subcommands run, imported when one runs: `tablecache --help`
 * needs none of it, and pg, zod and yaml cost start-up time.
 */
async function triggerModules() {
  const [config, triggers, connection] = await Promise.all([
    import('../daemon/config/index.ts'),
    import('../sql-triggers/index.ts'),
    import('./postgresConnection.ts'),
  ]);
  return { ...config, ...triggers, ...connection };
}

/** The `--config` option's value, as commander hands it to a handler. */
export interface ConfigOption {
  readonly config: string;
}

/** `-c, --config <file>` (or `TABLECACHE_CONFIG`), mandatory. */
export function configOption(): Option {
  return new Option('-c, --config <file>', 'the configuration file (YAML, JSON, or a JS/TS module)').env('TABLECACHE_CONFIG').makeOptionMandatory();
}

/** `--lock-timeout <ms>`: how long install and uninstall wait for a source table's lock. */
export function lockTimeoutOption(): Option {
  return new Option('--lock-timeout <ms>', 'give up when a source table stays locked this long (DROP/CREATE TRIGGER wait for writers)')
    .default(DEFAULT_LOCK_TIMEOUT_MS)
    .argParser((text) => {
      const value = Number(text);
      if (!Number.isSafeInteger(value) || value < 0) throw new ConfigError(`--lock-timeout ${JSON.stringify(text)}: expected a whole number of milliseconds.`);
      return value;
    });
}

function transactionScript(schema: string, lockTimeoutMs: number, statements: readonly string[]): string {
  if (statements.length === 0) return '-- Nothing to do: every source table\'s triggers are current.\n';
  const all = ['BEGIN', `SET LOCAL lock_timeout = ${lockTimeoutMs}`, installLockStatement(schema), ...statements, 'COMMIT'];
  return `${all.map((statement) => `${statement};`).join('\n\n')}\n`;
}

/** `triggers install`: create or upgrade the triggers (or print the SQL with `--dry-run`). */
export async function triggersInstall(context: CliContext, options: ConfigOption & { dryRun?: boolean; lockTimeout: number }): Promise<number> {
  const { loadConfig, triggerSpecFromConfig, withPostgresClient, checkConfigAgainstDatabase, installTriggers } = await triggerModules();
  const config = await loadConfig(options.config);
  const spec = triggerSpecFromConfig(config);
  return withPostgresClient(config.postgres.url, async (client) => {
    await checkConfigAgainstDatabase(client, config);
    const result = await installTriggers(client, spec, { dryRun: options.dryRun ?? false, lockTimeoutMs: options.lockTimeout });
    if (result.dryRun) {
      context.out(transactionScript(spec.schema, options.lockTimeout, result.statements));
      return EXIT_CODES.ok;
    }
    const where = `schema ${spec.schema}, channel ${spec.channel}`;
    if (result.installedSources.length > 0) context.out(`Installed change triggers (${where}) on: ${result.installedSources.join(', ')}\n`);
    if (result.removedSources.length > 0) context.out(`Removed change triggers of tables no longer in the config: ${result.removedSources.join(', ')}\n`);
    if (result.statements.length === 0) context.out(`Every source table's change triggers are current (${where}); nothing changed.\n`);
    return EXIT_CODES.ok;
  });
}

/** `triggers uninstall`: remove everything install created for the channel. */
export async function triggersUninstall(context: CliContext, options: ConfigOption & { dryRun?: boolean; lockTimeout: number }): Promise<number> {
  const { loadConfig, withPostgresClient, uninstallTriggers } = await triggerModules();
  const config = await loadConfig(options.config);
  return withPostgresClient(config.postgres.url, async (client) => {
    const result = await uninstallTriggers(client, { schema: config.triggers.schema, channel: config.triggers.channel }, { dryRun: options.dryRun ?? false, lockTimeoutMs: options.lockTimeout });
    if (result.dryRun) {
      context.out(transactionScript(config.triggers.schema, options.lockTimeout, result.statements));
      return EXIT_CODES.ok;
    }
    if (result.removedSources.length === 0 && !result.schemaDropped) {
      context.out(`No change triggers of channel ${config.triggers.channel} are installed in schema ${config.triggers.schema}; nothing changed.\n`);
      return EXIT_CODES.ok;
    }
    if (result.removedSources.length > 0) context.out(`Removed change triggers from: ${result.removedSources.join(', ')}\n`);
    context.out(
      result.schemaDropped
        ? `Dropped schema ${config.triggers.schema}.\n`
        : `Kept schema ${config.triggers.schema}: it existed before install, or holds other objects or another channel's triggers.\n`,
    );
    return EXIT_CODES.ok;
  });
}

/**
 * The config check's failure, or `null`: status prints the trigger status
 * anyway, then the problems, and exits with the code every command gives them.
 */
export async function configProblems(client: pg.ClientBase, config: TablecacheConfig): Promise<ConfigError | ConfigQueryError | null> {
  const { checkConfigAgainstDatabase, ConfigQueryError: QueryError } = await triggerModules();
  try {
    await checkConfigAgainstDatabase(client, config);
    return null;
  } catch (error) {
    if (!(error instanceof ConfigError) && !(error instanceof QueryError)) throw error;
    return error;
  }
}

function formatStatus(status: TriggerStatus): string {
  // Partitions and inheritance children follow their source, indented: each needs triggers of its own.
  const rows = status.sources.flatMap((source) => [
    [
      source.source,
      source.installedVersion === null ? 'no' : 'yes',
      source.installedVersion === null ? '-' : String(source.installedVersion),
      source.state,
      source.detail,
    ],
    ...source.children.map((child) => [
      `  ${child.kind === 'partition' ? 'partition' : 'child'} ${child.name}`,
      child.state === 'missing' ? 'no' : 'yes',
      '',
      child.state,
      child.detail,
    ]),
  ]);
  const table = formatTextTable(['SOURCE TABLE', 'INSTALLED', 'VERSION', 'STATE', 'DETAIL'], rows);
  const summary = status.allCurrent
    ? `All ${status.sources.length} source table(s) are current (schema ${status.schema}, channel ${status.channel}, definition version ${status.expectedVersion}).`
    : `Not current: run \`tablecache triggers install\` (schema ${status.schema}, channel ${status.channel}, definition version ${status.expectedVersion}).`;
  return `${table}\n\n${summary}\n`;
}

/** `triggers status`: the trigger table, exit 1 unless every source table is current. */
export async function triggersStatus(context: CliContext, options: ConfigOption & { json?: boolean }): Promise<number> {
  const { loadConfig, withPostgresClient, readTriggerStatus, triggerSpecFromConfig } = await triggerModules();
  const config = await loadConfig(options.config);
  return withPostgresClient(config.postgres.url, async (client) => {
    const problem = await configProblems(client, config);
    const result = await readTriggerStatus(client, triggerSpecFromConfig(config));
    if (options.json) context.out(`${JSON.stringify({ ...result, configProblems: problem === null ? [] : [problem.message] }, null, 2)}\n`);
    else {
      context.out(formatStatus(result));
      if (problem !== null) context.err(`${problem.message}\n`);
    }
    if (problem !== null) return describeFailure(problem).exitCode;
    return result.allCurrent ? EXIT_CODES.ok : EXIT_CODES.checkFailed;
  });
}

/** `triggers sql`: print the idempotent install script. */
export async function triggersSql(context: CliContext, options: ConfigOption): Promise<number> {
  const { loadConfig, installTriggersScript, triggerSpecFromConfig } = await triggerModules();
  const config = await loadConfig(options.config);
  context.out(installTriggersScript(triggerSpecFromConfig(config)));
  return EXIT_CODES.ok;
}

/** Adds `tablecache triggers install|uninstall|status|sql`. */
export function addTriggersCommand(program: Command, context: CliContext): void {
  const triggers = program
    .command('triggers')
    .description('install, inspect or remove the change triggers on the source tables')
    .addHelpText('after', '\nEach subcommand takes --config FILE (or TABLECACHE_CONFIG); see `tablecache triggers <command> --help`.');

  triggers
    .command('install')
    .description('create or upgrade every source table\'s triggers in one transaction; a second run changes nothing')
    .addOption(configOption())
    .option('--dry-run', 'print the SQL install would run, change nothing')
    .addOption(lockTimeoutOption())
    .action(context.run(triggersInstall));

  triggers
    .command('uninstall')
    .description('remove every trigger, function and schema install created, whatever the config now names')
    .addOption(configOption())
    .option('--dry-run', 'print the SQL uninstall would run, change nothing')
    .addOption(lockTimeoutOption())
    .action(context.run(triggersUninstall));

  triggers
    .command('status')
    .description('show, per source table, whether triggers are installed, their version, and whether they match the config (exit 1 if not all current)')
    .addOption(configOption())
    .option('--json', 'print the status as JSON')
    .action(context.run(triggersStatus));

  triggers
    .command('sql')
    .description('print the install SQL (idempotent, for migration tools: node-pg-migrate, Prisma, Knex); needs no database')
    .addOption(configOption())
    .action(context.run(triggersSql));
}
