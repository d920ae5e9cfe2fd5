import type pg from 'pg';
import { quoteIdentifier, quoteLiteral, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';
import { functionsOfChannel, readInstalledTriggers, SCHEMA_COMMENT, type InstalledFunction, type InstalledTriggers } from './installedTriggers.ts';
import { readSourceRelations, type SourceRelation } from './sourceChildren.ts';
import { doBlock, TRIGGER_DEFINITION_VERSION, type SourceTriggerDefinition } from './sourceTriggers.ts';
import { compareInstalledTriggers, sourceTriggerDefinitions } from './triggerStatus.ts';
import { resolveTriggerSpec, type TriggerSpec } from './triggerSpec.ts';
import { installLockStatement, runTriggerTransaction, type TriggerTransactionOptions } from './triggerTransaction.ts';

/** What {@link installTriggers} did (or, on a dry run, would do). */
export interface InstallResult {
  /** The statements run inside the transaction, after the lock; empty when everything was current. */
  readonly statements: readonly string[];
  /** Sources whose function and triggers were (re)created. */
  readonly installedSources: readonly string[];
  /** Sources that were installed but are no longer in the spec, now removed. */
  readonly removedSources: readonly string[];
  readonly dryRun: boolean;
}

function createSchemaStatement(schema: string): string {
  // Only a schema install created carries the comment, so uninstall never drops
  // a schema that was there before.
  return doBlock(`
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = ${quoteLiteral(schema)}) THEN
    CREATE SCHEMA ${quoteIdentifier(schema)};
    COMMENT ON SCHEMA ${quoteIdentifier(schema)} IS ${quoteLiteral(SCHEMA_COMMENT)};
  END IF;
END`);
}

/**
 * DROP statements for every trigger calling this deployment's functions that
 * the definitions do not expect (on the source table or one of its
 * partitions or children), e.g. on a table detached from a partitioned source.
 */
function unexpectedTriggerDrops(own: readonly InstalledFunction[], definitions: readonly SourceTriggerDefinition[], relations: readonly SourceRelation[]): string[] {
  const expected = new Map(definitions.map((definition, index) => [definition.functionName, { definition, relation: relations[index]! }]));
  return own.flatMap((fn) =>
    fn.triggers
      .filter((trigger) => {
        const entry = expected.get(fn.name);
        if (entry === undefined) return true;
        const { definition, relation } = entry;
        const tables = [definition.source, ...relation.children];
        const onExpectedTable = tables.some((table) => trigger.schema === table.schema && trigger.table === table.table);
        return !(onExpectedTable && definition.triggers.some((expectedTrigger) => expectedTrigger.name === trigger.name));
      })
      .map((trigger) => `DROP TRIGGER IF EXISTS ${quoteIdentifier(trigger.name)} ON ${quoteQualifiedName(trigger)}`),
  );
}

/**
 * The statements that bring this deployment's (`channel`'s) part of
 * `installed` to `definitions`: create the schema if needed, drop its
 * triggers and functions the definitions do not name, (re)create every
 * source that is not current, with the triggers of its partitions and
 * children. Another channel's functions and triggers are not touched. Empty
 * when all is current.
 */
function planInstall(
  schema: string,
  channel: string,
  installed: InstalledTriggers,
  definitions: readonly SourceTriggerDefinition[],
  relations: readonly SourceRelation[],
) {
  const statuses = compareInstalledTriggers(installed, definitions, relations, channel);
  const notCurrent = definitions.flatMap((definition, index) => (statuses[index]!.state === 'current' ? [] : [{ definition, relation: relations[index]! }]));
  const expectedNames = new Set(definitions.map((definition) => definition.functionName));
  const own = functionsOfChannel(installed, channel);
  const removed = own.filter((fn) => !expectedNames.has(fn.name));
  const statements = [
    ...(installed.schemaExists ? [] : [createSchemaStatement(schema)]),
    ...unexpectedTriggerDrops(own, definitions, relations),
    ...notCurrent.flatMap(({ definition, relation }) => [
      ...definition.createStatements,
      ...relation.children.flatMap((child) => definition.triggerStatementsOn(child)),
    ]),
    ...removed.map((fn) => `DROP FUNCTION IF EXISTS ${quoteIdentifier(schema)}.${quoteIdentifier(fn.name)}()`),
  ];
  return {
    statements,
    installedSources: notCurrent.map(({ definition }) => definition.sourceName),
    removedSources: removed.map((fn) => fn.comment.source),
  };
}

// Stands for a partition or child in the trigger statements of the script's DO block; replaced by format()'s %s.
const CHILD_PLACEHOLDER: QualifiedTableName = { schema: 'tc_child_schema', table: 'tc_child_table' };

/**
 * A DO block that gives every partition and inheritance child the source
 * exists with at the time the script runs (found through pg_inherits,
 * recursively) the source's triggers: the script is generated without a
 * database, so it cannot list them itself.
 */
function childTriggersBlock(definition: SourceTriggerDefinition): string {
  const placeholder = quoteQualifiedName(CHILD_PLACEHOLDER);
  // format() reads % as a directive: a literal one (in a quoted name) is doubled first.
  const executes = definition
    .triggerStatementsOn(CHILD_PLACEHOLDER)
    .map((statement) => `    EXECUTE format(${quoteLiteral(statement.replaceAll('%', '%%').replaceAll(placeholder, '%1$s'))}, child);`);
  return doBlock(`
DECLARE
  child regclass;
BEGIN
  FOR child IN
    WITH RECURSIVE tree(oid) AS (
      SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = ${quoteLiteral(quoteQualifiedName(definition.source))}::regclass
      UNION
      SELECT i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.oid
    )
    SELECT oid::regclass FROM tree
  LOOP
${executes.join('\n')}
  END LOOP;
END`);
}

/**
 * The complete install script for `spec`, for migration tools: it creates the
 * schema if needed and creates or replaces every source's function and
 * triggers, on the source table and on every partition and inheritance child
 * it has when the script runs. It is idempotent, expects to run in one transaction (which
 * migration tools provide), and, unlike {@link installTriggers}, cannot know
 * what an earlier config installed, so it removes nothing.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec.
 */
export function installTriggersScript(spec: TriggerSpec): string {
  const resolved = resolveTriggerSpec(spec);
  const statements = [
    installLockStatement(resolved.schema),
    createSchemaStatement(resolved.schema),
    ...sourceTriggerDefinitions(resolved).flatMap((definition) => [...definition.createStatements, childTriggersBlock(definition)]),
  ];
  const header = [
    `-- tablecache change triggers, definition version ${TRIGGER_DEFINITION_VERSION}: schema ${resolved.schema}, channel ${resolved.channel}.`,
    '-- Run in one transaction. Idempotent. Generated by `tablecache triggers sql`; do not edit.',
  ];
  return `${header.join('\n')}\n${statements.map((statement) => `${statement};`).join('\n\n')}\n`;
}

/**
 * Creates or upgrades the change triggers of every source table in `spec`, in
 * one transaction holding an advisory lock (concurrent installers wait for
 * each other). Sources already current are left untouched, so a second run
 * changes nothing; triggers and functions of sources no longer in the spec are
 * removed.
 *
 * The connected role must own the source tables (DROP TRIGGER requires it) and
 * may create schemas in the database when the trigger schema does not exist.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec; the driver's error (with its SQLSTATE `code`)
 * when a statement fails, e.g. `55P03` when a source table stayed locked past `lockTimeoutMs`.
 * @example
 * ```ts
 * const result = await installTriggers(client, { schema: 'tablecache', channel: 'tablecache_changes',
 *   sources: [{ schema: 'public', table: 'users', keyColumns: ['user_id'] }] });
 * ```
 */
export async function installTriggers(client: pg.ClientBase, spec: TriggerSpec, options: TriggerTransactionOptions = {}): Promise<InstallResult> {
  const resolved = resolveTriggerSpec(spec);
  const definitions = sourceTriggerDefinitions(resolved);
  const plan = await runTriggerTransaction(client, resolved.schema, options, async () =>
    planInstall(resolved.schema, resolved.channel, await readInstalledTriggers(client, resolved.schema), definitions, await readSourceRelations(client, resolved.sources)),
  );
  return { ...plan, dryRun: options.dryRun ?? false };
}

/** What {@link installChildTriggers} did. */
export interface ChildInstallResult {
  readonly statements: readonly string[];
  /** Partitions and children (canonical names) that got their triggers. */
  readonly installedTables: readonly string[];
  /** Partitions and children without triggers that the connected role does not own: `triggers install` must run as their owner. */
  readonly notOwnedTables: readonly string[];
}

/**
 * Creates the triggers of partitions and inheritance children that lack them
 * (a partition attached or created after install; a disabled trigger is left
 * as it is, since disabling may be an operator's decision), for every source whose
 * function is installed and current, on the tables the connected role owns;
 * nothing else. What the daemon does by itself when it finds a new
 * partition: unlike {@link installTriggers} it never replaces a function or
 * touches a source table, so it needs no more than ownership of the new tables.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec; the driver's error when a statement fails.
 */
export async function installChildTriggers(client: pg.ClientBase, spec: TriggerSpec, options: TriggerTransactionOptions = {}): Promise<ChildInstallResult> {
  const resolved = resolveTriggerSpec(spec);
  const definitions = sourceTriggerDefinitions(resolved);
  return runTriggerTransaction(client, resolved.schema, options, async () => {
    const installed = await readInstalledTriggers(client, resolved.schema);
    const relations = await readSourceRelations(client, resolved.sources);
    const statuses = compareInstalledTriggers(installed, definitions, relations, resolved.channel);
    const current = new Map(functionsOfChannel(installed, resolved.channel).map((fn) => [fn.name, fn.comment.hash]));
    const statements: string[] = [];
    const installedTables: string[] = [];
    const notOwnedTables: string[] = [];
    definitions.forEach((definition, index) => {
      if (current.get(definition.functionName) !== definition.hash) return;
      for (const child of statuses[index]!.children) {
        // A disabled trigger may be an operator's decision: only install or status' report changes that.
        if (child.state !== 'missing') continue;
        if (!child.ownedByCurrentRole) {
          notOwnedTables.push(child.name);
          continue;
        }
        statements.push(...definition.triggerStatementsOn(child));
        installedTables.push(child.name);
      }
    });
    return { statements, installedTables, notOwnedTables };
  });
}
