import { createHash } from 'node:crypto';
import { formatQualifiedName, quoteIdentifier, quoteLiteral, quoteQualifiedName } from './identifiers.ts';
import { NEW_ROWS, OLD_ROWS, triggerFunctionBody } from './triggerFunction.ts';
import type { ResolvedTriggerSpec, SourceTableSpec } from './triggerSpec.ts';

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
}

/** What install writes into `COMMENT ON FUNCTION`; status reads it back. */
export interface FunctionComment {
  readonly tablecache: 'change-trigger';
  readonly version: number;
  readonly source: string;
  readonly hash: string;
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
 * hash of the exact table name (`public.a_b` and `public_a.b` differ).
 */
export function triggerFunctionName(source: SourceTableSpec): string {
  const readable = `${source.schema}_${source.table}`.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40);
  return `notify_${readable}_${shortHash(JSON.stringify([source.schema, source.table])).slice(0, 8)}`;
}

/** The names of a source table's triggers; `<schema>_insert` etc., so two trigger schemas never clash on one table. */
export function triggerName(schema: string, event: TriggerEvent): string {
  return `${schema}_${event.toLowerCase()}`;
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
  const functionName = triggerFunctionName(source);
  const qualifiedFunction = `${quoteIdentifier(spec.schema)}.${quoteIdentifier(functionName)}`;
  const table = quoteQualifiedName(source);
  const createFunction = `CREATE OR REPLACE FUNCTION ${qualifiedFunction}() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(triggerFunctionBody(source, spec))}`;
  const triggers = EVENTS.map((event): TriggerDefinition => ({
    name: triggerName(spec.schema, event),
    event,
    tgtype: EVENT_BITS[event],
    ...TRANSITION_TABLES[event],
  }));
  const triggerStatements = triggers.flatMap((trigger) => {
    const referencing = [
      trigger.oldTable === null ? '' : ` OLD TABLE AS ${trigger.oldTable}`,
      trigger.newTable === null ? '' : ` NEW TABLE AS ${trigger.newTable}`,
    ].join('');
    const name = quoteIdentifier(trigger.name);
    return [
      `DROP TRIGGER IF EXISTS ${name} ON ${table}`,
      `CREATE TRIGGER ${name} AFTER ${trigger.event} ON ${table}${referencing ? ` REFERENCING${referencing}` : ''} FOR EACH STATEMENT EXECUTE FUNCTION ${qualifiedFunction}()`,
    ];
  });
  const hash = shortHash([TRIGGER_DEFINITION_VERSION, createFunction, ...triggerStatements].join('\n'));
  const sourceName = formatQualifiedName(source);
  const comment: FunctionComment = { tablecache: 'change-trigger', version: TRIGGER_DEFINITION_VERSION, source: sourceName, hash };
  const commentText = JSON.stringify(comment);
  return {
    source,
    sourceName,
    functionName,
    triggers,
    hash,
    comment: commentText,
    createStatements: [createFunction, `COMMENT ON FUNCTION ${qualifiedFunction}() IS ${quoteLiteral(commentText)}`, ...triggerStatements],
  };
}

/** Reads a function comment written by install; `null` for anything else. */
export function parseFunctionComment(text: string | null): FunctionComment | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<FunctionComment>;
    if (value.tablecache !== 'change-trigger' || typeof value.version !== 'number') return null;
    if (typeof value.source !== 'string' || typeof value.hash !== 'string') return null;
    return value as FunctionComment;
  } catch {
    return null;
  }
}
