import type pg from 'pg';
import { quoteIdentifier, quoteQualifiedName } from './identifiers.ts';
import { functionsOfChannel, readInstalledTriggers, type InstalledTriggers } from './installedTriggers.ts';
import { checkTriggerChannel, checkTriggerSchema } from './triggerSpec.ts';
import { runTriggerTransaction, type TriggerTransactionOptions } from './triggerTransaction.ts';

/** What {@link uninstallTriggers} did (or, on a dry run, would do). */
export interface UninstallResult {
  readonly statements: readonly string[];
  /** Sources whose triggers and function were dropped. */
  readonly removedSources: readonly string[];
  /** Whether the schema itself was dropped (only a schema install created, and only once empty). */
  readonly schemaDropped: boolean;
  readonly dryRun: boolean;
}

/** Which deployment {@link uninstallTriggers} removes: its trigger schema and NOTIFY channel. */
export interface UninstallTarget {
  readonly schema: string;
  readonly channel: string;
}

function planUninstall({ schema, channel }: UninstallTarget, installed: InstalledTriggers) {
  const own = functionsOfChannel(installed, channel);
  // Another deployment's functions (another channel) keep the schema alive.
  const othersRemain = installed.functions.length > own.length;
  const schemaDropped = installed.schemaCreatedByInstall && installed.otherObjectCount === 0 && !othersRemain;
  const statements = [
    ...own.flatMap((fn) => fn.triggers.map((trigger) => `DROP TRIGGER IF EXISTS ${quoteIdentifier(trigger.name)} ON ${quoteQualifiedName(trigger)}`)),
    ...own.map((fn) => `DROP FUNCTION IF EXISTS ${quoteIdentifier(schema)}.${quoteIdentifier(fn.name)}()`),
    // RESTRICT: should anything have appeared in the schema since it was read, the drop fails rather than take it along.
    ...(schemaDropped ? [`DROP SCHEMA ${quoteIdentifier(schema)} RESTRICT`] : []),
  ];
  return { statements, removedSources: own.map((fn) => fn.comment.source), schemaDropped };
}

/**
 * Removes everything install created for one deployment (a trigger schema
 * and a channel): every trigger calling one of its functions (whatever the
 * current config names, partitions included), the functions, and the schema
 * when install created it and nothing else lives in it. Another channel's
 * functions and triggers in the same schema are left alone. One transaction,
 * under the same advisory lock as install.
 *
 * @throws {@link InvalidArgumentError} for a malformed schema or channel name; the driver's error when a statement fails.
 */
export async function uninstallTriggers(client: pg.ClientBase, target: UninstallTarget, options: TriggerTransactionOptions = {}): Promise<UninstallResult> {
  checkTriggerSchema(target.schema);
  checkTriggerChannel(target.channel);
  const plan = await runTriggerTransaction(client, target.schema, options, async () => planUninstall(target, await readInstalledTriggers(client, target.schema)));
  return { ...plan, dryRun: options.dryRun ?? false };
}
