import pg from 'pg';
import { TablecacheError } from '../../lib/core/errors.ts';
import { formatQualifiedName } from '../../sql-triggers/identifiers.ts';
import { ConfigError, MISSING_NAME_STATES } from './configError.ts';
import type { SourceConfig, TableConfig, TablecacheConfig } from './configSchema.ts';
import { nearestNames } from './nearestNames.ts';

interface CatalogTable {
  readonly name: string;
  readonly kind: string;
  readonly columns: readonly string[];
}

const RELATION_KINDS: Record<string, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', f: 'foreign table' };
// The user's queries are only planned and started (LIMIT 0), but a pathological
// one must not hang the check.
const QUERY_CHECK_TIMEOUT_MS = 15_000;
const SHOWN_NAMES = 12;

async function readCatalog(client: pg.ClientBase): Promise<Map<string, CatalogTable>> {
  const result = await client.query<{ schema: string; table: string; kind: string; columns: string[] }>(
    `SELECT n.nspname AS schema, c.relname AS table, c.relkind AS kind,
            coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}') AS columns
     FROM pg_catalog.pg_class c
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
     GROUP BY n.nspname, c.relname, c.relkind`,
  );
  return new Map(
    result.rows.map((row) => {
      const name = formatQualifiedName(row);
      return [name, { name, kind: row.kind, columns: row.columns }];
    }),
  );
}

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, SHOWN_NAMES).join(', ');
  return names.length > SHOWN_NAMES ? `${shown}, … (${names.length} in all)` : shown || '(none)';
}

function checkColumns(problems: string[], at: string, what: string, wanted: readonly string[], available: readonly string[], owner: string): void {
  for (const column of wanted) {
    if (available.includes(column)) continue;
    problems.push(`${at}: ${what} ${JSON.stringify(column)} is not a column of ${owner}; its columns: ${listNames(nearestNames(column, available, available.length))}`);
  }
}

function checkSourceTable(problems: string[], source: SourceConfig, catalog: Map<string, CatalogTable>): void {
  const found = catalog.get(source.name);
  if (found === undefined) {
    const tables = [...catalog.values()].filter((table) => table.kind === 'r' || table.kind === 'p').map((table) => table.name);
    problems.push(`${source.configPath}: table ${source.name} does not exist; tables that do, nearest first: ${listNames(nearestNames(source.name, tables, tables.length))}`);
    return;
  }
  if (found.kind !== 'r' && found.kind !== 'p') {
    problems.push(`${source.configPath}: ${source.name} is a ${RELATION_KINDS[found.kind] ?? found.kind}; change triggers need a table.`);
    return;
  }
  checkColumns(problems, `${source.configPath}.key`, 'key column', source.key, found.columns, source.name);
  if (source.columns !== undefined) checkColumns(problems, `${source.configPath}.columns`, 'column', source.columns, found.columns, source.name);
}

/**
 * The configured query did not run for a reason other than a name the
 * database does not have: privileges, a syntax error, the check's statement
 * timeout. Code `TC_QUERY_FAILED` (the CLI's exit code 4); the message lists
 * every such query with its config path and the server's error.
 */
export class ConfigQueryError extends TablecacheError {
  /** The configuration file. */
  readonly file: string;

  constructor(message: string, file: string) {
    super('TC_QUERY_FAILED', message);
    this.file = file;
  }
}


/** Where a configured query's problem goes: `missing` names make a {@link ConfigError}, `refused` queries a {@link ConfigQueryError}. */
interface Problems {
  readonly missing: string[];
  readonly refused: string[];
}

type Described = { fields: string[] } | { error: string; missingName: boolean };

/**
 * Runs `sql` with `args` under LIMIT 0 in a read-only transaction and returns
 * its column names, or the server's error. An error that is not the
 * server's (the connection broke) is thrown: it says nothing about the query.
 */
async function describeQuery(client: pg.ClientBase, sql: string, args: unknown[]): Promise<Described> {
  await client.query('BEGIN READ ONLY');
  try {
    await client.query(`SET LOCAL statement_timeout = ${QUERY_CHECK_TIMEOUT_MS}`);
    const result = await client.query(`SELECT * FROM (${sql}\n) AS checked LIMIT 0`, args);
    return { fields: result.fields.map((field) => field.name) };
  } catch (error) {
    // The connection broke or the server shuts down (08xxx, 57P0x, 53xxx): that says nothing about the query.
    if (!(error instanceof pg.DatabaseError) || /^(08|57P|53)/.test(error.code ?? '')) throw error;
    return { error: `${error.message} (SQLSTATE ${error.code ?? 'unknown'})`, missingName: MISSING_NAME_STATES.has(error.code ?? '') };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

async function checkTableQueries(client: pg.ClientBase, problems: Problems, table: TableConfig): Promise<void> {
  if (table.query === undefined) return;
  const described = await describeQuery(client, table.query, []);
  if ('error' in described) {
    (described.missingName ? problems.missing : problems.refused).push(`${table.configPath}.query: the query fails: ${described.error}`);
    return;
  }
  const resultName = `the result of tables.${table.name}.query`;
  checkColumns(problems.missing, `${table.configPath}.primaryKey`, 'primary key column', table.primaryKey, described.fields, resultName);
  for (const source of table.sources) {
    if (source.match !== undefined) checkColumns(problems.missing, `${source.configPath}.match`, 'match column', source.match, described.fields, resultName);
    if (source.resolve === undefined) continue;
    const resolved = await describeQuery(client, source.resolve, source.key.map(() => []));
    if ('error' in resolved) {
      const problem = `${source.configPath}.resolve: the query fails with empty key arrays ($1…$${source.key.length}): ${resolved.error}`;
      (resolved.missingName ? problems.missing : problems.refused).push(problem);
      continue;
    }
    checkColumns(problems.missing, `${source.configPath}.resolve`, 'primary key column', table.primaryKey, resolved.fields, 'the result of the resolve query');
  }
}

/**
 * Checks the configuration against the live database: every source table
 * exists and is a table, its key and filter columns exist, every `query` and
 * `resolve` query runs (planned under `LIMIT 0`, read-only) and returns the
 * primary key and `match` columns. Messages list the names that do exist,
 * nearest first. Every command that reads the configuration against a
 * database runs this first, so one mistake gets one exit code everywhere.
 *
 * @throws {@link ConfigError} (`TC_CONFIG_INVALID`, exit code 2) listing every problem with its config path, when
 * anything names a table, column or other object the database does not have.
 * @throws {@link ConfigQueryError} (`TC_QUERY_FAILED`, exit code 4) when, otherwise, a configured query fails
 * (privileges, syntax, the check's 15 s statement timeout).
 * @throws the connection's error when the connection breaks during the check.
 */
export async function checkConfigAgainstDatabase(client: pg.ClientBase, config: TablecacheConfig): Promise<void> {
  const catalog = await readCatalog(client);
  const problems: Problems = { missing: [], refused: [] };
  for (const table of config.tables) {
    for (const source of table.sources) checkSourceTable(problems.missing, source, catalog);
    await checkTableQueries(client, problems, table);
  }
  const list = (lines: readonly string[]) => lines.map((problem) => `  - ${problem}`).join('\n');
  if (problems.missing.length > 0) {
    throw new ConfigError(`The configuration in ${config.file} does not match the database:\n${list([...problems.missing, ...problems.refused])}`, { file: config.file });
  }
  if (problems.refused.length > 0) {
    throw new ConfigQueryError(`Postgres refused a query of the configuration in ${config.file}:\n${list(problems.refused)}`, config.file);
  }
}
