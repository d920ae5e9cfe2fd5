import type pg from 'pg';
import { parseFunctionComment, type FunctionComment } from './sourceTriggers.ts';

/** The comment install puts on a trigger schema it created; uninstall drops only such a schema. */
export const SCHEMA_COMMENT = 'tablecache: change-trigger functions; created by `tablecache triggers install`, removed by `tablecache triggers uninstall`';

/** A trigger, found in the catalog, that calls one of our functions. */
export interface InstalledTrigger {
  readonly schema: string;
  readonly table: string;
  readonly name: string;
  readonly tgtype: number;
  /** `pg_trigger.tgenabled`: `O` (origin), `A` (always), `R` (replica only) or `D` (disabled). */
  readonly enabled: string;
  readonly oldTable: string | null;
  readonly newTable: string | null;
}

/** A trigger function in the trigger schema that install created (its comment says so). */
export interface InstalledFunction {
  readonly name: string;
  readonly comment: FunctionComment;
  /**
   * The channel it notifies: the deployment it belongs to. From the comment,
   * or, for a function installed before comments named it, from the body;
   * `null` when neither tells (install and uninstall leave such a function alone).
   */
  readonly channel: string | null;
  readonly triggers: readonly InstalledTrigger[];
}

/** What the catalog holds of an installation. */
export interface InstalledTriggers {
  readonly schemaExists: boolean;
  /** The schema carries {@link SCHEMA_COMMENT}: install created it, so uninstall may drop it. */
  readonly schemaCreatedByInstall: boolean;
  readonly functions: readonly InstalledFunction[];
  /** Objects in the schema that are not our functions: uninstall then keeps the schema. */
  readonly otherObjectCount: number;
}

interface FunctionRow {
  name: string;
  comment: string | null;
  body: string;
  triggers: InstalledTrigger[];
}

// Every generated body notifies with the channel as a plain literal (channel names are plain identifiers).
const NOTIFY_CALL = /pg_notify\('([a-z_][a-z0-9_]*)'/;

function channelInBody(body: string): string | null {
  return NOTIFY_CALL.exec(body)?.[1] ?? null;
}

/**
 * The functions of one deployment (one channel) in an installation: what its
 * install, status and uninstall look at. Another channel's functions in the
 * same schema belong to another deployment and are never touched.
 */
export function functionsOfChannel(installed: InstalledTriggers, channel: string): InstalledFunction[] {
  return installed.functions.filter((fn) => fn.channel === channel);
}

/** Reads every function install created in `schema`, with the triggers that call it. One round trip per catalog. */
export async function readInstalledTriggers(client: pg.ClientBase, schema: string): Promise<InstalledTriggers> {
  const schemaRows = await client.query<{ oid: number; comment: string | null }>(
    `SELECT n.oid, pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
     FROM pg_catalog.pg_namespace n WHERE n.nspname = $1`,
    [schema],
  );
  const schemaRow = schemaRows.rows[0];
  if (schemaRow === undefined) return { schemaExists: false, schemaCreatedByInstall: false, functions: [], otherObjectCount: 0 };
  const functionRows = await client.query<FunctionRow & { oid: number }>(
    `SELECT p.oid, p.proname AS name, pg_catalog.obj_description(p.oid, 'pg_proc') AS comment, p.prosrc AS body,
            coalesce(json_agg(json_build_object(
              'schema', tn.nspname, 'table', c.relname, 'name', t.tgname, 'tgtype', t.tgtype,
              'enabled', t.tgenabled, 'oldTable', t.tgoldtable, 'newTable', t.tgnewtable
            ) ORDER BY tn.nspname, c.relname, t.tgname) FILTER (WHERE t.oid IS NOT NULL), '[]') AS triggers
     FROM pg_catalog.pg_proc p
     LEFT JOIN pg_catalog.pg_trigger t ON t.tgfoid = p.oid
     LEFT JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
     LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = c.relnamespace
     WHERE p.pronamespace = $1
     GROUP BY p.oid
     ORDER BY p.proname`,
    [schemaRow.oid],
  );
  const functions: InstalledFunction[] = [];
  const ownOids: number[] = [];
  for (const row of functionRows.rows) {
    const comment = parseFunctionComment(row.comment);
    if (comment === null) continue;
    functions.push({ name: row.name, comment, channel: comment.channel ?? channelInBody(row.body), triggers: row.triggers });
    ownOids.push(row.oid);
  }
  const others = await client.query<{ count: string }>(
    `SELECT count(*) FROM pg_catalog.pg_depend
     WHERE refclassid = 'pg_catalog.pg_namespace'::regclass AND refobjid = $1
       AND NOT (classid = 'pg_catalog.pg_proc'::regclass AND objid = ANY($2::oid[]))`,
    [schemaRow.oid, ownOids],
  );
  return {
    schemaExists: true,
    schemaCreatedByInstall: schemaRow.comment === SCHEMA_COMMENT,
    functions,
    otherObjectCount: Number(others.rows[0]!.count),
  };
}
