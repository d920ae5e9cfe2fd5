import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '../lib/core/errors.ts';
import type { CaptureMethod, TablecacheConfig } from '../daemon/config/index.ts';
import type { LogicalCaptureInstallResult } from '../sql-triggers/index.ts';
import type { CliContext } from './cliContext.ts';
import { describeFailure, EXIT_CODES } from './exitCodes.ts';
import { formatLogicalCaptureStatus } from './logicalCaptureStatusText.ts';
import { configOption, configProblems, lockTimeoutOption, triggersInstall, triggersSql, triggersStatus, triggersUninstall, type ConfigOption } from './triggersCommand.ts';

/** What the logical subcommands run, imported when one runs (pg, zod and yaml cost start-up time). */
async function captureModules() {
  const [config, capture, connection] = await Promise.all([
    import('../daemon/config/index.ts'),
    import('../sql-triggers/index.ts'),
    import('./postgresConnection.ts'),
  ]);
  return { ...config, ...capture, ...connection };
}

interface MethodOption {
  /** Overrides `capture.method`: e.g. to remove the old capture after a switch. */
  readonly method?: CaptureMethod;
}

function methodOption(): Option {
  return new Option('--method <method>', 'act on this capture instead of the configured capture.method (e.g. uninstall the old one after switching)').choices([
    'triggers',
    'logical',
  ]);
}

/** The method a command acts on: `--method`, else the configuration's. */
async function chosenMethod(options: ConfigOption & MethodOption): Promise<{ config: TablecacheConfig; method: CaptureMethod }> {
  const { loadConfig } = await captureModules();
  const config = await loadConfig(options.config);
  return { config, method: options.method ?? config.capture.method };
}

/**
 * The roles that must be able to replicate: the users in `postgres.url` and
 * `postgres.listenUrl` when they name one other than the connected role
 * (which is always checked).
 */
function configuredRoles(config: TablecacheConfig): string[] {
  return [config.postgres.url, config.postgres.listenUrl].flatMap((url) => {
    const user = decodeURIComponent(new URL(url).username);
    return user === '' ? [] : [user];
  });
}

function logicalScript(result: LogicalCaptureInstallResult, lockTimeoutMs: number): string {
  const warnings = result.warnings.map((warning) => `-- warning: ${warning.message}\n--   Fix: ${warning.fix}\n`).join('');
  const { publicationStatements, slotStatements } = result;
  if (publicationStatements.length + slotStatements.length === 0) return `${warnings}-- Nothing to do: the publication and the slot are in place.\n`;
  const parts = [
    ...(publicationStatements.length === 0 ? [] : ['BEGIN', `SET LOCAL lock_timeout = ${lockTimeoutMs}`, ...publicationStatements, 'COMMIT']),
    // A slot cannot be created in a transaction that has written: each of its statements runs on its own.
    ...slotStatements,
  ];
  return `${warnings}${parts.map((statement) => `${statement};`).join('\n\n')}\n`;
}

function describeInstall(result: LogicalCaptureInstallResult, config: TablecacheConfig): string {
  const { slot, publication } = config.capture;
  const lines = [
    ...(result.publicationCreated ? [`Created publication ${publication}.`] : []),
    ...(result.addedTables.length > 0 ? [`Added to publication ${publication}: ${result.addedTables.join(', ')}`] : []),
    ...(result.removedTables.length > 0 ? [`Removed from publication ${publication} (no longer sources): ${result.removedTables.join(', ')}`] : []),
    ...(result.partitionTriggersCreated.length > 0
      ? [`Created the truncate trigger of partition(s) ${result.partitionTriggersCreated.join(', ')} (a TRUNCATE of one partition alone is not published; it fires on TRUNCATE only).`]
      : []),
    ...(result.slotCreated ? [`Created replication slot ${slot} (pgoutput): it keeps WAL from now on until a daemon with capture.method logical streams from it.`] : []),
    ...(result.slotRecreated ? [`Recreated replication slot ${slot}, which was invalidated (wal_status lost): the daemon reloads every table.`] : []),
  ];
  if (lines.length === 0) lines.push(`Publication ${publication} and replication slot ${slot} are in place; nothing changed.`);
  return `${lines.join('\n')}\n`;
}

async function install(context: CliContext, options: ConfigOption & MethodOption & { dryRun?: boolean; lockTimeout: number }): Promise<number> {
  const { config, method } = await chosenMethod(options);
  if (method === 'triggers') return triggersInstall(context, options);
  const { withPostgresClient, checkConfigAgainstDatabase, installLogicalCapture, logicalCaptureSpecFromConfig, formatCaptureChecks } = await captureModules();
  return withPostgresClient(config.postgres.url, async (client) => {
    await checkConfigAgainstDatabase(client, config);
    const result = await installLogicalCapture(client, logicalCaptureSpecFromConfig(config), {
      dryRun: options.dryRun ?? false,
      lockTimeoutMs: options.lockTimeout,
      otherRoles: configuredRoles(config),
    });
    if (result.dryRun) {
      context.out(logicalScript(result, options.lockTimeout));
      return EXIT_CODES.ok;
    }
    context.out(describeInstall(result, config));
    if (result.warnings.length > 0) context.err(`Warnings:\n${formatCaptureChecks(result.warnings)}\n`);
    return EXIT_CODES.ok;
  });
}

async function uninstall(context: CliContext, options: ConfigOption & MethodOption & { dryRun?: boolean; force?: boolean; lockTimeout: number }): Promise<number> {
  const { config, method } = await chosenMethod(options);
  if (method === 'triggers') {
    if (options.force) throw new InvalidArgumentError('--force applies to the logical capture only (it terminates the process streaming from the slot); the triggers need no force.');
    return triggersUninstall(context, options);
  }
  const { withPostgresClient, uninstallLogicalCapture } = await captureModules();
  const { slot, publication } = config.capture;
  return withPostgresClient(config.postgres.url, async (client) => {
    const result = await uninstallLogicalCapture(client, config.capture, { dryRun: options.dryRun ?? false, force: options.force ?? false });
    if (result.refusedActivePid !== null) {
      context.err(
        `Replication slot ${slot} is in use by process ${result.refusedActivePid} (a daemon streaming from it); nothing changed. ` +
          'Dropping it would end that stream and throw away the changes it has not confirmed yet. Stop the daemon (or switch it to ' +
          'capture.method triggers and restart it), then run this again; or pass --force to terminate that process first.\n',
      );
      return EXIT_CODES.checkFailed;
    }
    if (result.dryRun) {
      context.out(result.statements.length === 0 ? '-- Nothing to do.\n' : `${result.statements.map((statement) => `${statement};`).join('\n')}\n`);
      return EXIT_CODES.ok;
    }
    const lines = [
      result.slotDropped ? `Dropped replication slot ${slot}.` : `No replication slot ${slot} of this database; nothing to drop.`,
      result.publicationDropped ? `Dropped publication ${publication}.` : result.keptForeignPublication ? `Kept publication ${publication}: tablecache did not create it.` : `No publication ${publication}.`,
      ...(result.partitionTriggersDropped > 0 ? [`Dropped the truncate trigger of ${result.partitionTriggersDropped} partition(s).`] : []),
    ];
    context.out(`${lines.join('\n')}\n`);
    return EXIT_CODES.ok;
  });
}

async function status(context: CliContext, options: ConfigOption & MethodOption & { json?: boolean }): Promise<number> {
  const { config, method } = await chosenMethod(options);
  if (method === 'triggers') return triggersStatus(context, options);
  const { withPostgresClient, readLogicalCaptureStatus, logicalCaptureSpecFromConfig } = await captureModules();
  return withPostgresClient(config.postgres.url, async (client) => {
    const configProblem = await configProblems(client, config);
    const result = await readLogicalCaptureStatus(client, logicalCaptureSpecFromConfig(config), configuredRoles(config));
    if (options.json) context.out(`${JSON.stringify({ method, ...result, configProblems: configProblem === null ? [] : [configProblem.message] }, null, 2)}\n`);
    else {
      context.out(formatLogicalCaptureStatus(result));
      if (configProblem !== null) context.err(`${configProblem.message}\n`);
    }
    if (configProblem !== null) return describeFailure(configProblem).exitCode;
    if (result.checks.some((check) => check.level === 'problem')) return EXIT_CODES.captureSetup;
    return result.allCurrent ? EXIT_CODES.ok : EXIT_CODES.checkFailed;
  });
}

async function sql(context: CliContext, options: ConfigOption & MethodOption): Promise<number> {
  const { config, method } = await chosenMethod(options);
  if (method === 'triggers') return triggersSql(context, options);
  const { logicalCaptureScript, logicalCaptureSpecFromConfig } = await captureModules();
  context.out(logicalCaptureScript(logicalCaptureSpecFromConfig(config)));
  return EXIT_CODES.ok;
}

/** Adds `tablecache capture install|uninstall|status|sql`: the configured change source's setup, whichever method. */
export function addCaptureCommand(program: Command, context: CliContext): void {
  const capture = program
    .command('capture')
    .description('set up, inspect or remove the configured change source: triggers, or a logical replication slot and publication')
    .addHelpText(
      'after',
      '\nEach subcommand acts on capture.method from --config FILE (or TABLECACHE_CONFIG), or on --method. With method triggers they\n' +
        'do what `tablecache triggers <command>` does; see `tablecache capture <command> --help`.',
    );

  capture
    .command('install')
    .description('check the server (wal_level, REPLICATION, replica identity, slot headroom; each problem with its fix), then create or update the publication and create the slot; a second run changes nothing')
    .addOption(configOption())
    .addOption(methodOption())
    .option('--dry-run', 'check and print the SQL install would run, change nothing')
    .addOption(lockTimeoutOption().default(5000, '5000; logical: also how long creating the slot waits for open transactions'))
    .action(context.run(install));

  capture
    .command('uninstall')
    .description('drop the slot (releasing the WAL it keeps) and the publication install created; refuses while a daemon streams from the slot')
    .addOption(configOption())
    .addOption(methodOption())
    .option('--dry-run', 'print the SQL uninstall would run, change nothing')
    .option('--force', 'logical: terminate the process streaming from the slot, then drop it')
    .addOption(lockTimeoutOption())
    .action(context.run(uninstall));

  capture
    .command('status')
    .description('logical: the slot (active, lag in bytes and seconds, retained WAL, wal_status), the publication against the config, replica identities, and the checks; exit 0 when all is in place')
    .addOption(configOption())
    .addOption(methodOption())
    .option('--json', 'print the status as JSON')
    .action(context.run(status));

  capture
    .command('sql')
    .description('print the idempotent setup SQL (for migration tools); needs no database')
    .addOption(configOption())
    .addOption(methodOption())
    .action(context.run(sql));
}
