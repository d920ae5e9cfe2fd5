import type pg from 'pg';
import type { DbRecordsSpec } from '../lib/core/dbAccess.ts';

/**
 * The planner's estimate of how many rows a query returns (`EXPLAIN`, which
 * plans without running it), for the progress and ETA of a load; `null`
 * when Postgres cannot plan it now. It is an estimate: after a bulk change
 * and before ANALYZE it may be far off, so progress is shown as rows read
 * against "about" this many.
 */
export async function estimateRows(pool: pg.Pool, spec: DbRecordsSpec<unknown>): Promise<number | null> {
  try {
    const result = await pool.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) ${spec.query}`, [...spec.args]);
    const rows = result.rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'];
    return typeof rows === 'number' && Number.isFinite(rows) ? Math.round(rows) : null;
  } catch {
    return null;
  }
}
