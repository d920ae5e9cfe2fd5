import { InvalidArgumentError } from '../lib/core/errors.ts';
import { formatQualifiedName, quoteIdentifier, type QualifiedTableName } from './identifiers.ts';

/** One source table: whose changes to report, identified by which columns. */
export interface SourceTableSpec extends QualifiedTableName {
  /** Columns whose values the payloads carry (`k`, `ok`), in this order. Never empty. */
  readonly keyColumns: readonly string[];
  /**
   * When given, an UPDATE is reported only for rows where one of these columns
   * or a key column changed value. Omit to report every updated row.
   */
  readonly columns?: readonly string[];
}

/** Everything the trigger SQL is generated from: plain values, never the config object. */
export interface TriggerSpec {
  /** The schema that holds the trigger functions; created by install, dropped by uninstall. */
  readonly schema: string;
  /** The NOTIFY channel. */
  readonly channel: string;
  readonly sources: readonly SourceTableSpec[];
  /** A statement that changes more rows (or distinct keys) than this sends one coarse `X` payload. */
  readonly maxKeysPerStatement?: number;
  /** A statement whose keys need more notifications than this sends one coarse `X` payload instead. */
  readonly maxNotificationsPerStatement?: number;
  /**
   * When `pg_notification_queue_usage()` is at or above this fraction, the
   * triggers send nothing: a full queue would make every notifying commit
   * fail. Whoever listens must resync after seeing usage this high.
   */
  readonly maxQueueUsage?: number;
}

/** {@link TriggerSpec} with every default applied and every name checked. */
export type ResolvedTriggerSpec = Required<TriggerSpec>;

/** The defaults of the optional {@link TriggerSpec} fields, in one place (the config file uses them too). */
export const TRIGGER_DEFAULTS = {
  schema: 'tablecache',
  channel: 'tablecache_changes',
  maxKeysPerStatement: 5000,
  maxNotificationsPerStatement: 16,
  maxQueueUsage: 0.5,
} as const;

// Our own names (not the user's) are kept plain so that they read well in
// trigger names (`<schema>_insert`) and fit the 63-byte identifier limit.
const OWN_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

function checkOwnName(value: string, what: string): void {
  if (!OWN_NAME.test(value)) {
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(value)} is not allowed: expected lower-case letters, digits and _, starting with a letter or _, at most 48 characters.`,
    );
  }
}

/**
 * Checks a trigger schema name on its own (uninstall needs nothing else).
 *
 * @throws {@link InvalidArgumentError} when it is not a plain lower-case identifier of at most 48 characters.
 */
export function checkTriggerSchema(schema: string): string {
  checkOwnName(schema, 'Trigger schema');
  return schema;
}

/**
 * Checks a NOTIFY channel name on its own.
 *
 * @throws {@link InvalidArgumentError} when it is not a plain lower-case identifier of at most 48 characters.
 */
export function checkTriggerChannel(channel: string): string {
  checkOwnName(channel, 'Notification channel');
  return channel;
}

function checkPositiveInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`${what} is ${value}; expected a positive integer.`);
}

function checkColumns(columns: readonly string[], source: string, what: string): void {
  const seen = new Set<string>();
  for (const column of columns) {
    quoteIdentifier(column, `${what} of ${source}`);
    if (seen.has(column)) throw new InvalidArgumentError(`${what} of ${source} lists ${JSON.stringify(column)} twice.`);
    seen.add(column);
  }
}

function checkSource(source: SourceTableSpec): void {
  const name = formatQualifiedName(source);
  quoteIdentifier(source.schema, `Schema of ${name}`);
  quoteIdentifier(source.table, `Table name ${name}`);
  if (source.keyColumns.length === 0) throw new InvalidArgumentError(`Source table ${name} has no key columns; expected at least one.`);
  checkColumns(source.keyColumns, name, 'Key columns');
  if (source.columns === undefined) return;
  if (source.columns.length === 0) {
    throw new InvalidArgumentError(`Source table ${name} has an empty column filter; omit it to report every update, or name the columns that matter.`);
  }
  checkColumns(source.columns, name, 'Filter columns');
}

/**
 * Applies the defaults and checks every name and bound.
 *
 * @throws {@link InvalidArgumentError} naming the bad value: a schema or channel that is not a plain lower-case identifier,
 * an empty or over-long identifier, a source listed twice, no key columns, a non-positive bound.
 */
export function resolveTriggerSpec(spec: TriggerSpec): ResolvedTriggerSpec {
  const resolved: ResolvedTriggerSpec = {
    schema: spec.schema,
    channel: spec.channel,
    sources: spec.sources,
    maxKeysPerStatement: spec.maxKeysPerStatement ?? TRIGGER_DEFAULTS.maxKeysPerStatement,
    maxNotificationsPerStatement: spec.maxNotificationsPerStatement ?? TRIGGER_DEFAULTS.maxNotificationsPerStatement,
    maxQueueUsage: spec.maxQueueUsage ?? TRIGGER_DEFAULTS.maxQueueUsage,
  };
  checkTriggerSchema(resolved.schema);
  checkTriggerChannel(resolved.channel);
  checkPositiveInteger(resolved.maxKeysPerStatement, 'maxKeysPerStatement');
  checkPositiveInteger(resolved.maxNotificationsPerStatement, 'maxNotificationsPerStatement');
  if (!(resolved.maxQueueUsage >= 0 && resolved.maxQueueUsage <= 1)) {
    throw new InvalidArgumentError(`maxQueueUsage is ${resolved.maxQueueUsage}; expected a fraction between 0 and 1.`);
  }
  const seen = new Set<string>();
  for (const source of resolved.sources) {
    checkSource(source);
    const name = formatQualifiedName(source);
    if (seen.has(name)) throw new InvalidArgumentError(`Source table ${name} is listed twice; merge its key columns into one entry.`);
    seen.add(name);
  }
  return resolved;
}
