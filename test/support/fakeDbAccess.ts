import type { DbAccess, DbRecordsSpec } from '../../lib/core/dbAccess.ts';

/** Produces the rows a query returns for its arguments; an async generator can pause between rows. */
export type FakeQueryHandler = (
  args: readonly unknown[],
) => Iterable<Record<string, unknown>> | AsyncIterable<Record<string, unknown>>;

/** One query the fake answered (or failed), in the order they started. */
export interface FakeQueryCall {
  readonly query: string;
  readonly args: readonly unknown[];
}

/**
 * A {@link DbAccess} for unit tests of pure logic: each query string the test
 * registers is answered by a function of the query's arguments, and every
 * query is recorded, so a test can assert "did not hit the database" or "hit
 * it once with these arguments".
 *
 * @example
 * ```ts
 * const db = new FakeDbAccess();
 * db.answer('all users', () => users);
 * db.answer('some users', ([keys]) => users.filter((u) => (keys as number[]).includes(u.id)));
 * // … exercise the code …
 * expect(db.callsTo('some users')).toHaveLength(1);
 * ```
 */
export class FakeDbAccess implements DbAccess {
  private readonly handlers = new Map<string, FakeQueryHandler>();
  private readonly recorded: FakeQueryCall[] = [];

  /** Answers `query` with `handler` from now on (replacing an earlier handler). */
  answer(query: string, handler: FakeQueryHandler): this {
    this.handlers.set(query, handler);
    return this;
  }

  /** Every query started so far, in order. */
  get calls(): readonly FakeQueryCall[] {
    return this.recorded;
  }

  /** How many queries have started. */
  get queryCount(): number {
    return this.recorded.length;
  }

  /** The calls of one query string. */
  callsTo(query: string): FakeQueryCall[] {
    return this.recorded.filter((call) => call.query === query);
  }

  async *getRecords<R>(spec: DbRecordsSpec<R>): AsyncIterable<R> {
    const handler = this.handlers.get(spec.query);
    this.recorded.push({ query: spec.query, args: spec.args });
    if (handler === undefined) {
      throw new Error(`FakeDbAccess has no answer for the query ${JSON.stringify(spec.query)}; register one with answer().`);
    }
    const parse = spec.recordParser ?? ((row: Record<string, unknown>) => row as R);
    // A real driver builds fresh row objects for every query; copying keeps a
    // test's later edits of its rows out of what the cache already stored.
    for await (const row of handler(spec.args)) yield parse({ ...row });
  }
}
