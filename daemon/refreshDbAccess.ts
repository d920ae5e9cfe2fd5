import type pg from 'pg';
import type { DbAccess, DbRecordsSpec } from '../lib/core/dbAccess.ts';
import { QueryFailedError } from '../lib/postgres/errors.ts';
import type { PostgresAccess } from '../lib/postgres/postgresAccess.ts';
import { exactTypeParsers } from '../lib/postgres/typeParsers.ts';

/**
 * The daemon's database reads. A load (a spec without parameters: the whole
 * query) streams through {@link PostgresAccess}, a cursor in a read-only
 * snapshot transaction, so no result is ever held whole; it counts its rows
 * (for progress reports) and stops when `abandonLoads` aborts (a daemon
 * stopping does not wait for a long load: readers keep the data published
 * before it). A refresh (a spec with key arrays) selects at most one batch
 * of keys' records, so it runs as one plain statement, which is its own
 * snapshot: one round trip instead of the cursor's five (BEGIN, bind, fetch,
 * close, ROLLBACK), which is most of a small refresh's time.
 */
export class RefreshDbAccess implements DbAccess {
  /** Rows the running (or last) load has read so far. */
  streamedRows = 0;

  constructor(
    private readonly streaming: PostgresAccess,
    private readonly pool: pg.Pool,
    private readonly abandonLoads?: AbortSignal,
  ) {}

  async *getRecords<R>(spec: DbRecordsSpec<R>): AsyncGenerator<R, void, undefined> {
    if (spec.args.length === 0) {
      this.streamedRows = 0;
      for await (const record of this.streaming.getRecords(spec)) {
        this.abandonLoads?.throwIfAborted();
        this.streamedRows++;
        yield record;
      }
      return;
    }
    let rows: Record<string, unknown>[];
    try {
      rows = (await this.pool.query<Record<string, unknown>>({ text: spec.query, values: [...spec.args], types: exactTypeParsers })).rows;
    } catch (error) {
      throw new QueryFailedError(spec.query, error);
    }
    const parse = spec.recordParser ?? ((row: Record<string, unknown>) => row as R);
    for (const row of rows) yield parse(row);
  }
}
