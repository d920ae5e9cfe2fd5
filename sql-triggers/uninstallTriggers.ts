import type pg from 'pg';
import { quoteIdentifier, quoteQualifiedName } from './identifiers.ts';
import { readInstalledTriggers, type InstalledTriggers } from './installedTriggers.ts';
import { checkTriggerSchema } from './triggerSpec.ts';
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

function planUninstall(schema: string, installed: InstalledTriggers) {
  const schemaDropped = installed.schemaCreatedByInstall && installed.otherObjectCount === 0;
  const statements = [
    ...installed.functions.flatMap((fn) =>
      fn.triggers.map((trigger) => `DROP TRIGGER IF EXISTS ${quoteIdentifier(trigger.name)} ON ${quoteQualifiedName(trigger)}`),
    ),
    ...installed.functions.map((fn) => `DROP FUNCTION IF EXISTS ${quoteIdentifier(schema)}.${quoteIdentifier(fn.name)}()`),
    // RESTRICT: should anything have appeared in the schema since it was read, the drop fails rather than take it along.
    ...(schemaDropped ? [`DROP SCHEMA ${quoteIdentifier(schema)} RESTRICT`] : []),
  ];
  return { statements, removedSources: installed.functions.map((fn) => fn.comment.source), schemaDropped };
}

/**
 * Removes everything install created in `schema`: every trigger calling one of
 * its functions (whatever the current config names), the functions, and the
 * schema when install created it and nothing else lives in it. One
 * transaction, under the same advisory lock as install.
 *
 * @throws {@link InvalidArgumentError} for a malformed schema name; the driver's error when a statement fails.
 */
export async function uninstallTriggers(client: pg.ClientBase, schema: string, options: TriggerTransactionOptions = {}): Promise<UninstallResult> {
  checkTriggerSchema(schema);
  const plan = await runTriggerTransaction(client, schema, options, async () => planUninstall(schema, await readInstalledTriggers(client, schema)));
  return { ...plan, dryRun: options.dryRun ?? false };
}
