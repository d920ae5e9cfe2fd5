import type pg from 'pg';
import { readInstalledTriggers, type InstalledFunction, type InstalledTriggers } from './installedTriggers.ts';
import { sourceTriggerDefinition, TRIGGER_DEFINITION_VERSION, type SourceTriggerDefinition } from './sourceTriggers.ts';
import { resolveTriggerSpec, type ResolvedTriggerSpec, type TriggerSpec } from './triggerSpec.ts';

/**
 * - `current`: installed exactly as the spec generates it.
 * - `stale`: installed from another config or version: install upgrades it.
 * - `missing`: the function or some of its triggers are not there.
 * - `disabled`: some trigger is disabled (`ALTER TABLE … DISABLE TRIGGER`) or fires only in replica mode.
 * - `not_in_config`: installed for a table the spec does not name: install removes it.
 */
export type SourceTriggerState = 'current' | 'stale' | 'missing' | 'disabled' | 'not_in_config';

/** The state of one source table's triggers. */
export interface SourceTriggerStatus {
  /** Canonical table name (`public.users`). */
  readonly source: string;
  readonly state: SourceTriggerState;
  /** The definition version recorded at install, `null` when nothing is installed. */
  readonly installedVersion: number | null;
  /** What differs, for people. Empty when current. */
  readonly detail: string;
}

/** The state of an installation against a spec. */
export interface TriggerStatus {
  readonly schema: string;
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

function sourceStatus(definition: SourceTriggerDefinition, installed: InstalledFunction | undefined): SourceTriggerStatus {
  const base = { source: definition.sourceName, installedVersion: installed?.comment.version ?? null };
  if (installed === undefined) return { ...base, state: 'missing', detail: 'not installed' };
  if (installed.comment.hash !== definition.hash) {
    return {
      ...base,
      state: 'stale',
      detail: `installed definition (version ${installed.comment.version}, hash ${installed.comment.hash}) differs from the configured one (version ${TRIGGER_DEFINITION_VERSION}, hash ${definition.hash})`,
    };
  }
  const { schema, table } = definition.source;
  const onTable = installed.triggers.filter((trigger) => trigger.schema === schema && trigger.table === table);
  const matching = definition.triggers.map((expected) =>
    onTable.find(
      (trigger) =>
        trigger.name === expected.name &&
        trigger.tgtype === expected.tgtype &&
        trigger.oldTable === expected.oldTable &&
        trigger.newTable === expected.newTable,
    ),
  );
  const missing = definition.triggers.filter((_, index) => matching[index] === undefined).map((trigger) => trigger.name);
  if (missing.length > 0) return { ...base, state: 'missing', detail: `trigger(s) ${missing.join(', ')} missing` };
  const disabled = matching.filter((trigger) => trigger !== undefined && isDisabled(trigger.enabled)).map((trigger) => trigger!.name);
  if (disabled.length > 0) return { ...base, state: 'disabled', detail: `trigger(s) ${disabled.join(', ')} disabled` };
  const elsewhere = installed.triggers.filter((trigger) => !matching.includes(trigger));
  if (elsewhere.length > 0) {
    const names = elsewhere.map((trigger) => `${trigger.name} on ${trigger.schema}.${trigger.table}`).join(', ');
    return { ...base, state: 'stale', detail: `the function also fires from ${names}` };
  }
  return { ...base, state: 'current', detail: '' };
}

/**
 * Compares what the catalog holds with the definitions (pure: used by status
 * and by install's plan).
 */
export function compareInstalledTriggers(
  installed: InstalledTriggers,
  definitions: readonly SourceTriggerDefinition[],
): SourceTriggerStatus[] {
  const byName = new Map(installed.functions.map((fn) => [fn.name, fn]));
  const expectedNames = new Set(definitions.map((definition) => definition.functionName));
  const configured = definitions.map((definition) => sourceStatus(definition, byName.get(definition.functionName)));
  const extra = installed.functions
    .filter((fn) => !expectedNames.has(fn.name))
    .map(
      (fn): SourceTriggerStatus => ({
        source: fn.comment.source,
        state: 'not_in_config',
        installedVersion: fn.comment.version,
        detail: 'installed, but the config names no such source table: install or uninstall removes it',
      }),
    );
  return [...configured, ...extra];
}

/** Generates every source's definition from a resolved spec. */
export function sourceTriggerDefinitions(spec: ResolvedTriggerSpec): SourceTriggerDefinition[] {
  return spec.sources.map((source) => sourceTriggerDefinition(source, spec));
}

/**
 * Reads the installation in `spec.schema` and compares it with what `spec`
 * generates. Read-only; takes no lock.
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
  const sources = compareInstalledTriggers(installed, sourceTriggerDefinitions(resolved));
  return {
    schema: resolved.schema,
    expectedVersion: TRIGGER_DEFINITION_VERSION,
    sources,
    allCurrent: sources.every((source) => source.state === 'current'),
  };
}
