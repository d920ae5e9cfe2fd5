import type pg from 'pg';
import { functionsOfChannel, readInstalledTriggers, type InstalledFunction, type InstalledTrigger, type InstalledTriggers } from './installedTriggers.ts';
import type { QualifiedTableName } from './identifiers.ts';
import { readSourceRelations, type SourceChild, type SourceRelation } from './sourceChildren.ts';
import { sourceTriggerDefinition, TRIGGER_DEFINITION_VERSION, type SourceTriggerDefinition } from './sourceTriggers.ts';
import { resolveTriggerSpec, type ResolvedTriggerSpec, type TriggerSpec } from './triggerSpec.ts';

/**
 * - `current`: installed exactly as the spec generates it, on the table and on every partition and inheritance child.
 * - `stale`: installed from another config or version: install upgrades it.
 * - `missing`: the function or some of its triggers are not there (on the table, or on a partition or child), or the table itself is gone.
 * - `disabled`: some trigger is disabled (`ALTER TABLE … DISABLE TRIGGER`) or fires only in replica mode.
 * - `not_in_config`: installed for a table the spec does not name: install removes it.
 */
export type SourceTriggerState = 'current' | 'stale' | 'missing' | 'disabled' | 'not_in_config';

/** The triggers of one partition or inheritance child of a source table. */
export interface ChildTriggerStatus extends SourceChild {
  readonly state: 'current' | 'missing' | 'disabled';
  /** What differs, for people. Empty when current. */
  readonly detail: string;
}

/** The state of one source table's triggers. */
export interface SourceTriggerStatus {
  /** Canonical table name (`public.users`). */
  readonly source: string;
  readonly state: SourceTriggerState;
  /** The definition version recorded at install, `null` when nothing is installed. */
  readonly installedVersion: number | null;
  /** What differs, for people. Empty when current. */
  readonly detail: string;
  /** Whether the table exists (`false` also for `not_in_config` entries, which are not looked up). */
  readonly exists: boolean;
  /** Every partition (at any level) and inheritance child of the table, with the state of its triggers. */
  readonly children: readonly ChildTriggerStatus[];
  /**
   * Every change to the table reaches the channel: the function is current
   * and its triggers are present and enabled on the table and on every
   * partition and child. (A `stale` source whose only fault is triggers left
   * on a table that is no longer a child still captures.)
   */
  readonly capturesChanges: boolean;
}

/** The state of an installation against a spec. */
export interface TriggerStatus {
  readonly schema: string;
  /** The deployment: only functions notifying this channel are compared (another channel's are another deployment's). */
  readonly channel: string;
  /** The version this code generates. */
  readonly expectedVersion: number;
  /** One entry per configured source, then one per installed source the spec does not name. */
  readonly sources: readonly SourceTriggerStatus[];
  /** Every configured source is `current` and nothing else is installed. */
  readonly allCurrent: boolean;
}

function isDisabled(enabled: string): boolean {
  // 'R' fires only while session_replication_role = replica: off for ordinary writers.
  return enabled === 'D' || enabled === 'R';
}

/** Which of the definition's triggers `table` lacks, and which it has disabled; `matched` collects the ones found. */
function triggersOn(definition: SourceTriggerDefinition, installed: InstalledFunction, table: QualifiedTableName, matched: Set<InstalledTrigger>) {
  const onTable = installed.triggers.filter((trigger) => trigger.schema === table.schema && trigger.table === table.table);
  const missing: string[] = [];
  const disabled: string[] = [];
  for (const expected of definition.triggers) {
    const found = onTable.find(
      (trigger) =>
        trigger.name === expected.name &&
        trigger.tgtype === expected.tgtype &&
        trigger.oldTable === expected.oldTable &&
        trigger.newTable === expected.newTable,
    );
    if (found === undefined) missing.push(expected.name);
    else {
      matched.add(found);
      if (isDisabled(found.enabled)) disabled.push(found.name);
    }
  }
  return { missing, disabled };
}

function childStatuses(definition: SourceTriggerDefinition, installed: InstalledFunction | undefined, children: readonly SourceChild[]) {
  return children.map((child): ChildTriggerStatus => {
    if (installed === undefined) return { ...child, state: 'missing', detail: 'not installed' };
    const { missing, disabled } = triggersOn(definition, installed, child, new Set());
    if (missing.length > 0) return { ...child, state: 'missing', detail: `trigger(s) ${missing.join(', ')} missing` };
    if (disabled.length > 0) return { ...child, state: 'disabled', detail: `trigger(s) ${disabled.join(', ')} disabled` };
    return { ...child, state: 'current', detail: '' };
  });
}

function sourceStatus(definition: SourceTriggerDefinition, installed: InstalledFunction | undefined, relation: SourceRelation): SourceTriggerStatus {
  const exists = relation.oid !== null;
  const children = childStatuses(definition, installed, relation.children);
  const base = { source: definition.sourceName, installedVersion: installed?.comment.version ?? null, exists, children, capturesChanges: false };
  if (!exists) return { ...base, state: 'missing', detail: 'the table does not exist' };
  if (installed === undefined) return { ...base, state: 'missing', detail: 'not installed' };
  if (installed.comment.hash !== definition.hash) {
    return {
      ...base,
      state: 'stale',
      detail: `installed definition (version ${installed.comment.version}, hash ${installed.comment.hash}) differs from the configured one (version ${TRIGGER_DEFINITION_VERSION}, hash ${definition.hash})`,
    };
  }
  const matched = new Set<InstalledTrigger>();
  const own = triggersOn(definition, installed, definition.source, matched);
  for (const child of relation.children) triggersOn(definition, installed, child, matched);
  if (own.missing.length > 0) return { ...base, state: 'missing', detail: `trigger(s) ${own.missing.join(', ')} missing` };
  const describeChildren = (state: ChildTriggerStatus['state']) =>
    children
      .filter((child) => child.state === state)
      .map((child) => `${child.kind === 'partition' ? 'partition' : 'inheritance child'} ${child.name}`)
      .join(', ');
  if (children.some((child) => child.state === 'missing')) return { ...base, state: 'missing', detail: `no triggers on ${describeChildren('missing')}` };
  if (own.disabled.length > 0) return { ...base, state: 'disabled', detail: `trigger(s) ${own.disabled.join(', ')} disabled` };
  if (children.some((child) => child.state === 'disabled')) return { ...base, state: 'disabled', detail: `trigger(s) disabled on ${describeChildren('disabled')}` };
  const elsewhere = installed.triggers.filter((trigger) => !matched.has(trigger));
  if (elsewhere.length > 0) {
    const names = elsewhere.map((trigger) => `${trigger.name} on ${trigger.schema}.${trigger.table}`).join(', ');
    return { ...base, state: 'stale', detail: `the function also fires from ${names}`, capturesChanges: true };
  }
  return { ...base, state: 'current', detail: '', capturesChanges: true };
}

/**
 * Compares what the catalog holds of one deployment (`channel`) with the
 * definitions, given each configured source's partitions and children (pure:
 * used by status and by install's plan).
 */
export function compareInstalledTriggers(
  installed: InstalledTriggers,
  definitions: readonly SourceTriggerDefinition[],
  relations: readonly SourceRelation[],
  channel: string,
): SourceTriggerStatus[] {
  const own = functionsOfChannel(installed, channel);
  const byName = new Map(own.map((fn) => [fn.name, fn]));
  const expectedNames = new Set(definitions.map((definition) => definition.functionName));
  const configured = definitions.map((definition, index) => sourceStatus(definition, byName.get(definition.functionName), relations[index]!));
  const extra = own
    .filter((fn) => !expectedNames.has(fn.name))
    .map(
      (fn): SourceTriggerStatus => ({
        source: fn.comment.source,
        state: 'not_in_config',
        installedVersion: fn.comment.version,
        detail: 'installed, but the config names no such source table: install or uninstall removes it',
        exists: false,
        children: [],
        capturesChanges: false,
      }),
    );
  return [...configured, ...extra];
}

/** Generates every source's definition from a resolved spec. */
export function sourceTriggerDefinitions(spec: ResolvedTriggerSpec): SourceTriggerDefinition[] {
  return spec.sources.map((source) => sourceTriggerDefinition(source, spec));
}

/**
 * Reads the installation of `spec`'s deployment (its schema and channel),
 * with every partition and inheritance child of the source tables, and
 * compares it with what `spec` generates. Read-only; takes no lock.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec; the driver's error when a catalog query fails.
 * @example
 * ```ts
 * const status = await readTriggerStatus(client, spec);
 * if (!status.allCurrent) process.exitCode = 1;
 * ```
 */
export async function readTriggerStatus(client: pg.ClientBase, spec: TriggerSpec): Promise<TriggerStatus> {
  const resolved = resolveTriggerSpec(spec);
  const installed = await readInstalledTriggers(client, resolved.schema);
  const relations = await readSourceRelations(client, resolved.sources);
  const sources = compareInstalledTriggers(installed, sourceTriggerDefinitions(resolved), relations, resolved.channel);
  return {
    schema: resolved.schema,
    channel: resolved.channel,
    expectedVersion: TRIGGER_DEFINITION_VERSION,
    sources,
    allCurrent: sources.every((source) => source.state === 'current'),
  };
}
