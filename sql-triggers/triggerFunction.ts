import { InvalidArgumentError } from '../lib/core/errors.ts';
import { formatQualifiedName, quoteIdentifier, quoteLiteral } from './identifiers.ts';
import { MAX_PAYLOAD_BYTES, PAYLOAD_VERSION } from './payload.ts';
import type { ResolvedTriggerSpec, SourceTableSpec } from './triggerSpec.ts';

/** Names of the transition tables the triggers declare (`REFERENCING … AS`). */
export const NEW_ROWS = 'tc_new_rows';
export const OLD_ROWS = 'tc_old_rows';

// The widest `xid` (xid8: 20 digits) and `ts` (numeric(16,3): 17 characters)
// the head can hold, so the key budget is a constant of the function.
const WIDEST_STAMP = `,"xid":"${'9'.repeat(20)}","ts":${'9'.repeat(13)}.999`;
// `,"k":[` + `]` + `,"ok":[` + `]` + `}`
const KEY_LISTS_OVERHEAD = 16;
// Below this many bytes for keys, a payload would hold too few keys to be useful.
const MIN_KEY_BUDGET = 1024;

/**
 * One key value as JSON text. `bigint` and `numeric` become strings: a JSON
 * number becomes a JavaScript double on the other side, which loses digits
 * past 2^53. NULL becomes `null` (string concatenation would otherwise turn
 * the whole tuple into NULL).
 */
function keyValueJson(alias: string, column: string): string {
  const ref = `${alias}.${quoteIdentifier(column, 'Key column')}`;
  return `coalesce((CASE WHEN pg_typeof(${ref}) IN ('bigint'::regtype, 'numeric'::regtype) THEN to_json(${ref}::text) ELSE to_json(${ref}) END)::text, 'null')`;
}

function keyTupleJson(alias: string, keyColumns: readonly string[]): string {
  return `'[' || ${keyColumns.map((column) => keyValueJson(alias, column)).join(` || ',' || `)} || ']'`;
}

/**
 * The filter's columns other than the key, as text of row `r`: text because
 * not every type has an equality operator, and every type has a text form.
 */
function filteredValues(source: SourceTableSpec): string[] {
  return (source.columns ?? [])
    .filter((column) => !source.keyColumns.includes(column))
    .map((column) => `r.${quoteIdentifier(column, 'Filter column')}::text`);
}

/**
 * Rows (f, j), distinct: `f` is `k` for a key to report in `k`, `o` for one in
 * `ok`; `j` is the key tuple as JSON text. Written as GROUP BY over one scan
 * rather than DISTINCT/EXCEPT, because most statements change one row and
 * then the fixed cost of each plan node is what the writer pays.
 */
function insertOrDeleteChanges(source: SourceTableSpec, rows: string): string {
  return `SELECT 'k'::text AS f, ${keyTupleJson('r', source.keyColumns)} AS j FROM ${rows} AS r GROUP BY 2`;
}

function updateChanges(source: SourceTableSpec): string {
  const key = keyTupleJson('r', source.keyColumns);
  if (source.columns === undefined) {
    // A key any new row has goes to k; a key only old rows have goes to ok.
    return `SELECT CASE WHEN bool_or(is_new) THEN 'k' ELSE 'o' END AS f, j
      FROM (SELECT true AS is_new, ${key} AS j FROM ${NEW_ROWS} AS r UNION ALL SELECT false, ${key} FROM ${OLD_ROWS} AS r) AS both_sides
      GROUP BY j`;
  }
  // Transition tables do not pair old and new rows, so the filter compares the
  // multisets of (key, filtered columns) of both sides: a (key, values) group
  // with as many new rows as old ones did not change and drops out.
  const filtered = filteredValues(source);
  const values = filtered.map((expression, index) => `, ${expression} AS c${index}`).join('');
  const groupColumns = ['j', ...filtered.map((_, index) => `c${index}`)].join(', ');
  return `SELECT CASE WHEN bool_or(balance > 0) THEN 'k' ELSE 'o' END AS f, j
      FROM (
        SELECT j, sum(side) AS balance
        FROM (SELECT 1 AS side, ${key} AS j${values} FROM ${NEW_ROWS} AS r UNION ALL SELECT -1, ${key}${values} FROM ${OLD_ROWS} AS r) AS both_sides
        GROUP BY ${groupColumns}
        HAVING sum(side) <> 0
      ) AS changed
      GROUP BY j`;
}

/**
 * The common case, a statement that changed one row, with the fewest plan
 * nodes: executor start-up of a query's plan is most of a trigger's cost.
 * Gives `row_count` (1 means exactly one row; for UPDATE, the product of the
 * old and new counts, each cut at 2), the key `k`, for UPDATE the old key `ok`
 * when it differs, and whether the row changed at all (for a column filter).
 */
function singleRowQuery(source: SourceTableSpec, event: 'INSERT' | 'DELETE' | 'UPDATE'): string {
  const key = keyTupleJson('r', source.keyColumns);
  if (event !== 'UPDATE') {
    return `SELECT count(*) AS row_count, min(j) AS k, NULL::text AS ok, true AS changed
      FROM (SELECT ${key} AS j FROM ${event === 'INSERT' ? NEW_ROWS : OLD_ROWS} AS r LIMIT 2) AS r`;
  }
  const filtered = filteredValues(source);
  const values = filtered.map((expression, index) => `, ${expression} AS c${index}`).join('');
  const changed =
    source.columns === undefined ? 'true' : ['n.j <> o.j', ...filtered.map((_, index) => `n.c${index} IS DISTINCT FROM o.c${index}`)].join(' OR ');
  return `SELECT count(*) AS row_count, min(n.j) AS k, nullif(min(o.j), min(n.j)) AS ok, bool_or(${changed}) AS changed
      FROM (SELECT ${key} AS j${values} FROM ${NEW_ROWS} AS r LIMIT 2) AS n
      CROSS JOIN (SELECT ${key} AS j${values} FROM ${OLD_ROWS} AS r LIMIT 2) AS o`;
}

/**
 * One row summing up a statement's distinct changes: whether it is over the
 * key bound, how many keys, whether they all fit one payload, and the key
 * lists. A multi-row statement whose keys fit one payload ends here.
 *
 * With `guardRows`, at most maxKeys + 1 rows of that transition table are
 * counted first; when there are more, a one-time filter skips computing the
 * distinct keys altogether, so a huge statement costs the trigger only that
 * count.
 */
function summaryQuery(changes: string, guardRows: string | null, spec: ResolvedTriggerSpec, budget: number): string {
  const maxKeys = spec.maxKeysPerStatement;
  const guard = guardRows === null ? '' : `WITH guard AS MATERIALIZED (SELECT count(*) AS row_count FROM (SELECT FROM ${guardRows} LIMIT ${maxKeys + 1}) AS r)\n      `;
  return `${guard}SELECT ${guardRows === null ? '' : `(SELECT row_count FROM guard) > ${maxKeys} OR `}count(*) > ${maxKeys} AS too_many,
             count(*) AS n,
             coalesce(sum(octet_length(j) + 1), 0) <= ${budget} AS fits,
             string_agg(j, ',') FILTER (WHERE f = 'k') AS k,
             string_agg(j, ',') FILTER (WHERE f = 'o') AS ok
      FROM (SELECT f, j FROM (${changes}) AS c LIMIT ${maxKeys + 1}) AS c${guardRows === null ? '' : `\n      WHERE (SELECT row_count FROM guard) <= ${maxKeys}`}`;
}

/**
 * Splits the distinct changes into parts whose key lists fit `budget` bytes,
 * in one pass: a key goes to part `floor(start / (budget - longest))`, where
 * `start` is its byte offset in the concatenation of all keys; a part then
 * holds at most `budget - longest` bytes of starts plus one key of at most
 * `longest` bytes. Each row also says whether the statement is over a bound.
 * Only run when {@link summaryQuery} found the keys within maxKeys but too
 * long for one payload.
 */
function chunksQuery(changes: string, spec: ResolvedTriggerSpec, budget: number): string {
  return `WITH measured AS (
        SELECT f, j,
               sum(octet_length(j) + 1) OVER (ORDER BY f, j COLLATE "C" ROWS UNBOUNDED PRECEDING) - octet_length(j) - 1 AS start_at,
               max(octet_length(j) + 1) OVER () AS longest
        FROM (SELECT f, j FROM (${changes}) AS c LIMIT ${spec.maxKeysPerStatement + 1}) AS c
      ),
      chunks AS (
        SELECT start_at / greatest(${budget} - longest, 1) AS chunk, max(longest) AS longest,
               string_agg(j, ',') FILTER (WHERE f = 'k') AS k,
               string_agg(j, ',') FILTER (WHERE f = 'o') AS ok
        FROM measured
        GROUP BY 1
      )
      SELECT k, ok, (longest > ${budget} OR count(*) OVER () > ${spec.maxNotificationsPerStatement}) AS too_large
      FROM chunks
      ORDER BY chunk`;
}

/**
 * The PL/pgSQL body of a source table's trigger function (one function serves
 * its INSERT, UPDATE, DELETE and TRUNCATE statement triggers).
 *
 * It never raises (docs/daemon.md, invariant 4): any error falls back to a coarse `X`
 * payload, sent from the exception handler after the failed part's
 * notifications were rolled back with it.
 *
 * @throws {@link InvalidArgumentError} when the key column names leave too little room for keys in a payload.
 */
export function triggerFunctionBody(source: SourceTableSpec, spec: ResolvedTriggerSpec): string {
  const table = formatQualifiedName(source);
  const tableJson = JSON.stringify(table);
  const columnsJson = JSON.stringify(source.keyColumns);
  const headPrefix = `{"v":${PAYLOAD_VERSION},"t":${tableJson},"op":`;
  const widestHead = `${headPrefix}"U"${WIDEST_STAMP},"c":${columnsJson}`;
  const budget = MAX_PAYLOAD_BYTES - Buffer.byteLength(widestHead, 'utf8') - KEY_LISTS_OVERHEAD;
  if (budget < MIN_KEY_BUDGET) {
    throw new InvalidArgumentError(
      `The names of ${table} and its key columns leave ${budget} bytes for keys in an 8000-byte payload; use shorter names or fewer key columns.`,
    );
  }
  const channel = quoteLiteral(spec.channel);
  const sendTooLarge = `PERFORM pg_notify(${channel}, ${quoteLiteral(`${headPrefix}"X"`)} || stamp || ',"reason":"too_large"}');`;
  const sendKeys = (row: string) =>
    `PERFORM pg_notify(${channel}, head || ',"k":[' || coalesce(${row}.k, '') || ']' || coalesce(',"ok":[' || ${row}.ok || ']', '') || '}');`;
  const stampSql = `',"xid":"' || pg_current_xact_id()::text || '","ts":' || (extract(epoch FROM clock_timestamp()) * 1000)::numeric(16, 3)::text`;
  const inserted = insertOrDeleteChanges(source, NEW_ROWS);
  const deleted = insertOrDeleteChanges(source, OLD_ROWS);
  const updated = updateChanges(source);
  // A column filter must compare every row, so an UPDATE with one is not cut short by the row count.
  const updateGuard = source.columns === undefined ? NEW_ROWS : null;
  return `
DECLARE
  stamp text;
  head text;
  single record;
  summary record;
  chunk_cursor refcursor;
  chunk_row record;
BEGIN
  -- A full notification queue makes every notifying commit fail: the trigger
  -- falls silent first, and the listener resyncs when it sees usage this high.
  IF pg_notification_queue_usage() >= ${spec.maxQueueUsage} THEN
    RETURN NULL;
  END IF;
  stamp := ${stampSql};
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(${channel}, ${quoteLiteral(`${headPrefix}"T"`)} || stamp || '}');
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT * INTO single FROM (${singleRowQuery(source, 'INSERT')}) AS s;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT * INTO single FROM (${singleRowQuery(source, 'DELETE')}) AS s;
  ELSE
    SELECT * INTO single FROM (${singleRowQuery(source, 'UPDATE')}) AS s;
  END IF;
  IF single.row_count = 0 THEN
    RETURN NULL;
  END IF;
  head := ${quoteLiteral(headPrefix)} || '"' || left(TG_OP, 1) || '"' || stamp || ${quoteLiteral(`,"c":${columnsJson}`)};
  IF single.row_count = 1 THEN
    IF NOT single.changed THEN
      RETURN NULL;
    END IF;
    IF octet_length(single.k) + coalesce(octet_length(single.ok), 0) + 2 > ${budget} THEN
      ${sendTooLarge}
      RETURN NULL;
    END IF;
    ${sendKeys('single')}
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT * INTO summary FROM (${summaryQuery(inserted, NEW_ROWS, spec, budget)}) AS s;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT * INTO summary FROM (${summaryQuery(deleted, OLD_ROWS, spec, budget)}) AS s;
  ELSE
    SELECT * INTO summary FROM (${summaryQuery(updated, updateGuard, spec, budget)}) AS s;
  END IF;
  IF summary.too_many THEN
    ${sendTooLarge}
    RETURN NULL;
  END IF;
  IF summary.n = 0 THEN
    RETURN NULL;
  END IF;
  IF summary.fits THEN
    ${sendKeys('summary')}
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    OPEN chunk_cursor FOR ${chunksQuery(inserted, spec, budget)};
  ELSIF TG_OP = 'DELETE' THEN
    OPEN chunk_cursor FOR ${chunksQuery(deleted, spec, budget)};
  ELSE
    OPEN chunk_cursor FOR ${chunksQuery(updated, spec, budget)};
  END IF;
  LOOP
    FETCH chunk_cursor INTO chunk_row;
    EXIT WHEN NOT FOUND;
    IF chunk_row.too_large THEN
      ${sendTooLarge}
      EXIT;
    END IF;
    ${sendKeys('chunk_row')}
  END LOOP;
  CLOSE chunk_cursor;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'tablecache: the change trigger on % failed (%: %); sent a table-changed notification instead', ${quoteLiteral(table)}, SQLSTATE, SQLERRM;
  PERFORM pg_notify(${channel}, ${quoteLiteral(`${headPrefix}"X"`)} || ${stampSql} || ',"reason":"error"}');
  RETURN NULL;
END`;
}
