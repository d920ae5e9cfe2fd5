import { createHash } from 'node:crypto';
import { formatQualifiedName, quoteIdentifier, quoteLiteral, quoteQualifiedName, type QualifiedTableName } from './identifiers.ts';
import { NEW_ROWS, OLD_ROWS, triggerFunctionBody } from './triggerFunction.ts';
import { TRIGGER_DEFAULTS, type ResolvedTriggerSpec, type SourceTableSpec } from './triggerSpec.ts';

/**
 * Version of the generated trigger definitions, recorded with every installed
 * function. Raised whenever the generated SQL changes meaning; the definition
 * hash catches every other difference.
 */
export const TRIGGER_DEFINITION_VERSION = 1;

/** The statement events a source table gets a trigger for. */
export type TriggerEvent = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';

/** One statement-level trigger on a source table, as install creates it and the catalog shows it. */
export interface TriggerDefinition {
  readonly name: string;
  readonly event: TriggerEvent;
  /** `pg_trigger.tgtype`: the AFTER … FOR EACH STATEMENT bits of the event. */
  readonly tgtype: number;
  readonly oldTable: string | null;
  readonly newTable: string | null;
}

/** Everything install creates for one source table, and how to recognise it in the catalog. */
export interface SourceTriggerDefinition {
  readonly source: SourceTableSpec;
  /** Canonical table name (`public.users`), as in payloads. */
  readonly sourceName: string;
  /** The trigger function's name inside the trigger schema. */
  readonly functionName: string;
  readonly triggers: readonly TriggerDefinition[];
  /** Hash of the generated definition: equal hashes mean equal SQL. */
  readonly hash: string;
  /** The comment stored on the function: version, source and hash, as JSON. */
  readonly comment: string;
  /** CREATE OR REPLACE FUNCTION, COMMENT, and DROP TRIGGER IF EXISTS + CREATE TRIGGER for each event. */
  readonly createStatements: readonly string[];
  /**
   * DROP TRIGGER IF EXISTS + CREATE TRIGGER for each event on another table
   * calling this source's function: a partition or inheritance child of the
   * source, whose own statements fire only its own statement-level triggers.
   */
  readonly triggerStatementsOn: (table: QualifiedTableName) => string[];
}

/** What install writes into `COMMENT ON FUNCTION`; status reads it back. */
export interface FunctionComment {
  readonly tablecache: 'change-trigger';
  readonly version: number;
  readonly source: string;
  readonly hash: string;
  /**
   * The NOTIFY channel: the deployment the function belongs to. Absent in
   * comments written before deployments were namespaced; the catalog reader
   * then takes it from the function body.
   */
  readonly channel?: string;
}

// pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h); a statement-level
// AFTER trigger has neither the ROW (1) nor the BEFORE (2) bit.
const EVENT_BITS: Record<TriggerEvent, number> = { INSERT: 4, DELETE: 8, UPDATE: 16, TRUNCATE: 32 };
const TRANSITION_TABLES: Record<TriggerEvent, { oldTable: string | null; newTable: string | null }> = {
  INSERT: { oldTable: null, newTable: NEW_ROWS },
  UPDATE: { oldTable: OLD_ROWS, newTable: NEW_ROWS },
  DELETE: { oldTable: OLD_ROWS, newTable: null },
  TRUNCATE: { oldTable: null, newTable: null },
};
const EVENTS: readonly TriggerEvent[] = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * The function name for a source: readable, and unique because it ends with a
 * hash of the exact table name (`public.a_b` and `public_a.b` differ) and, for
 * any channel but the default, of the channel: two deployments on one
 * database (different channels) each have their own function. The default
 * channel keeps the name installs had before deployments were namespaced, so
 * those installs stay current.
 */
export function triggerFunctionName(source: QualifiedTableName, channel: string = TRIGGER_DEFAULTS.channel): string {
  const readable = `${source.schema}_${source.table}`.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40);
  const identity = channel === TRIGGER_DEFAULTS.channel ? [source.schema, source.table] : [source.schema, source.table, channel];
  return `notify_${readable}_${shortHash(JSON.stringify(identity)).slice(0, 8)}`;
}

// A trigger name holds at most 63 bytes: the readable part is cut to leave room for the hash and the event.
const MAX_TRIGGER_PREFIX = 63 - '_123456_truncate'.length;

/**
 * The names of a source table's triggers, unique per deployment so that two
 * trigger schemas or two channels never clash on one table: `<schema>_insert`
 * etc. for the default channel (the names installs always had), otherwise
 * `<schema>_<channel>_<hash>_insert` (the hash of schema and channel keeps
 * `a_b`+`c` and `a`+`b_c` apart; the readable part is cut to fit 63 bytes).
 */
export function triggerName(schema: string, event: TriggerEvent, channel: string = TRIGGER_DEFAULTS.channel): string {
  if (channel === TRIGGER_DEFAULTS.channel) return `${schema}_${event.toLowerCase()}`;
  const prefix = `${schema}_${channel}`.slice(0, MAX_TRIGGER_PREFIX);
  return `${prefix}_${shortHash(JSON.stringify([schema, channel])).slice(0, 6)}_${event.toLowerCase()}`;
}

/** A dollar-quote tag that does not occur in `body` (a quoted identifier may contain `$tc$`). */
function dollarQuote(body: string): string {
  let tag = '$tc$';
  for (let n = 1; body.includes(tag); n += 1) tag = `$tc${n}$`;
  return `${tag}${body}${tag}`;
}

/** SQL that runs `body` as an anonymous PL/pgSQL block. */
export function doBlock(body: string): string {
  return `DO ${dollarQuote(body)}`;
}

/**
 * Generates a source table's function and triggers.
 *
 * @throws {@link InvalidArgumentError} for names that cannot be quoted or leave no room for keys.
 */
export function sourceTriggerDefinition(source: SourceTableSpec, spec: ResolvedTriggerSpec): SourceTriggerDefinition {
  const functionName = triggerFunctionName(source, spec.channel);
  const qualifiedFunction = `${quoteIdentifier(spec.schema)}.${quoteIdentifier(functionName)}`;
  const createFunction = `CREATE OR REPLACE FUNCTION ${qualifiedFunction}() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(triggerFunctionBody(source, spec))}`;
  const triggers = EVENTS.map((event): TriggerDefinition => ({
    name: triggerName(spec.schema, event, spec.channel),
    event,
    tgtype: EVENT_BITS[event],
    ...TRANSITION_TABLES[event],
  }));
  const triggerStatementsOn = (target: QualifiedTableName) =>
    triggers.flatMap((trigger) => {
      const referencing = [
        trigger.oldTable === null ? '' : ` OLD TABLE AS ${trigger.oldTable}`,
        trigger.newTable === null ? '' : ` NEW TABLE AS ${trigger.newTable}`,
      ].join('');
      const name = quoteIdentifier(trigger.name);
      const on = quoteQualifiedName(target);
      return [
        `DROP TRIGGER IF EXISTS ${name} ON ${on}`,
        `CREATE TRIGGER ${name} AFTER ${trigger.event} ON ${on}${referencing ? ` REFERENCING${referencing}` : ''} FOR EACH STATEMENT EXECUTE FUNCTION ${qualifiedFunction}()`,
      ];
    });
  const triggerStatements = triggerStatementsOn(source);
  // The hash covers the SQL only (not the comment), so an install from before the comment named its channel stays current.
  const hash = shortHash([TRIGGER_DEFINITION_VERSION, createFunction, ...triggerStatements].join('\n'));
  const sourceName = formatQualifiedName(source);
  const comment: FunctionComment = { tablecache: 'change-trigger', version: TRIGGER_DEFINITION_VERSION, source: sourceName, hash, channel: spec.channel };
  const commentText = JSON.stringify(comment);
  return {
    source,
    sourceName,
    functionName,
    triggers,
    hash,
    comment: commentText,
    createStatements: [createFunction, `COMMENT ON FUNCTION ${qualifiedFunction}() IS ${quoteLiteral(commentText)}`, ...triggerStatements],
    triggerStatementsOn,
  };
}

/** Reads a function comment written by install; `null` for anything else. */
export function parseFunctionComment(text: string | null): FunctionComment | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<FunctionComment>;
    if (value.tablecache !== 'change-trigger' || typeof value.version !== 'number') return null;
    if (typeof value.source !== 'string' || typeof value.hash !== 'string') return null;
    if (value.channel !== undefined && typeof value.channel !== 'string') return null;
    return value as FunctionComment;
  } catch {
    return null;
  }
}
