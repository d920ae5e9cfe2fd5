import type pg from 'pg';
import type { Logger } from '../lib/core/logger.ts';
import type { ChangeMapper } from './changeMapper.ts';
import type { ChangePipeline } from './changePipeline.ts';
import { classifyNotification, type Notification } from './notificationText.ts';
import { isTickText } from './stepSnapshot.ts';

/** What {@link SenderCheck.verdict} found about the sender of a notification. */
export type SenderVerdict =
  /** The sending session's role may write (INSERT, UPDATE, DELETE or TRUNCATE) a table the payload names. */
  | 'accept'
  /** It may write none of them: the payload is forged. */
  | 'reject'
  /** The session had exited (or is not a client backend): nobody can tell. */
  | 'unknown';

/** Options of a {@link SenderCheck}. */
export interface SenderCheckOptions {
  /** Runs the check query (the daemon's pool: its role needs no privilege beyond CONNECT for it). */
  readonly pool: Pick<pg.Pool, 'query'>;
  /** How long an accepted sender stays accepted without a query (default 60,000 ms). */
  readonly acceptTtlMs?: number;
  /**
   * How long a rejected sender stays rejected without a query (default
   * 1,000 ms): short, because once that session exits its process id may be
   * reused by a writer, whose changes must not be rejected.
   */
  readonly rejectTtlMs?: number;
}

const CHECK_QUERY = `SELECT a.usesysid IS NOT NULL AS is_user,
       coalesce(bool_or(has_table_privilege(a.usesysid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), false) AS may_write
  FROM pg_catalog.pg_stat_activity a
  LEFT JOIN pg_catalog.pg_class c ON c.oid = ANY (SELECT to_regclass(t) FROM unnest($2::text[]) AS t)
 WHERE a.pid = $1
 GROUP BY a.usesysid`;

/**
 * Tells whether the session that sent a notification may write the source
 * tables it names: every notification carries the sender's backend process
 * id; `pg_stat_activity` (whose `pid` and `usesysid` any role may read) gives
 * its role, and `has_table_privilege` whether that role may change the table.
 * A role with nothing but CONNECT can NOTIFY on the channel, but not write a
 * source table: its forged payloads are rejected.
 *
 * Verdicts are cached per process id and tables: accepted ones for
 * `acceptTtlMs` (a later session reusing the id gains nothing but refreshes
 * of the keys it names, which read Postgres' truth), rejected ones only for
 * `rejectTtlMs` (bounding a forger's cost at one query per interval without
 * rejecting a writer that might reuse the id much later). A session that
 * has exited before the query cannot be checked: its notification is
 * `unknown`, and the daemon reloads the tables instead of trusting or
 * dropping it.
 */
export class SenderCheck {
  private readonly cache = new Map<string, { verdict: 'accept' | 'reject'; until: number }>();
  /** Checks under way, so that a burst from one sender costs one query. */
  private readonly asking = new Map<string, Promise<SenderVerdict>>();
  private readonly acceptTtlMs: number;
  private readonly rejectTtlMs: number;

  constructor(private readonly options: SenderCheckOptions) {
    this.acceptTtlMs = options.acceptTtlMs ?? 60_000;
    this.rejectTtlMs = options.rejectTtlMs ?? 1_000;
  }

  /** The cached verdict for the sender `processId` and `tables` (canonical names), or a promise of one from a query. */
  verdict(processId: number, tables: readonly string[]): SenderVerdict | Promise<SenderVerdict> {
    const key = `${processId}\u0000${tables.join('\u0000')}`;
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.until > performance.now()) return cached.verdict;
    let asked = this.asking.get(key);
    if (asked === undefined) {
      asked = this.query(key, processId, tables).finally(() => this.asking.delete(key));
      this.asking.set(key, asked);
    }
    return asked;
  }

  /**
   * Whether the sender `processId` may write `table`, from the cache only:
   * `false` until a check has accepted it (a miss starts that check, and
   * never waits for it). For decisions that have a safe fallback.
   */
  trusts(processId: number, table: string): boolean {
    const verdict = this.verdict(processId, [table]);
    if (typeof verdict === 'string') return verdict === 'accept';
    verdict.catch(() => undefined);
    return false;
  }

  private async query(key: string, processId: number, tables: readonly string[]): Promise<SenderVerdict> {
    const result = await this.options.pool.query<{ is_user: boolean; may_write: boolean }>(CHECK_QUERY, [processId, tables]);
    const row = result.rows[0];
    if (row === undefined || !row.is_user) return 'unknown';
    const verdict = row.may_write ? 'accept' : 'reject';
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { verdict, until: performance.now() + (verdict === 'accept' ? this.acceptTtlMs : this.rejectTtlMs) });
    return verdict;
  }
}

/** Options of a {@link SenderGate}. */
export interface SenderGateOptions {
  readonly check: SenderCheck;
  readonly mapper: ChangeMapper;
  readonly pipeline: Pick<ChangePipeline, 'push' | 'pushClassified' | 'requestNotifiedReload'>;
  /** Every cached table (an unknown version naming no table may affect them all). */
  readonly tables: readonly string[];
  /** Called for a rejected notification (counted as `rejected`, logged). */
  readonly onRejected: (processId: number, notification: Notification) => void;
  readonly logger: Logger;
  /** Notifications held while a check runs, beyond which the rest are reloaded instead (default 10,000). */
  readonly maxHeld?: number;
}

/**
 * Puts each change notification through a {@link SenderCheck} before the
 * pipeline sees it, keeping arrival order (barriers mean "everything before
 * me is applied"): while a check query runs, later notifications wait behind
 * it. Most verdicts come from the cache, synchronously.
 */
export class SenderGate {
  /** Notifications waiting behind a check, in arrival order; `null` for the daemon's own snapshot ticks. */
  private readonly held: { text: string; notification: Notification | null; processId: number }[] = [];
  private draining = false;

  constructor(private readonly options: SenderGateOptions) {}

  /** Takes the raw text of a notification and its sender's process id. */
  push(text: string, processId: number): void {
    // A tick proves that every notification before it has arrived, so it keeps its place behind held ones.
    const notification = isTickText(text) ? null : classifyNotification(text);
    if (this.draining) {
      if (this.held.length >= (this.options.maxHeld ?? 10_000) && notification !== null && notification.kind !== 'barrier') {
        // Bounded memory while Postgres is slow to answer: what cannot be held becomes a reload.
        this.options.pipeline.requestNotifiedReload(this.options.tables, 'too many notifications waited for their sender check', 'unverified_sender');
        return;
      }
      this.held.push({ text, notification, processId });
      return;
    }
    const done = this.pass(text, notification, processId);
    if (done !== undefined) {
      this.draining = true;
      void done.then(() => this.drain());
    }
  }

  /** Passes one notification on, or returns a promise when its check needs a query. */
  private pass(text: string, notification: Notification | null, processId: number): Promise<void> | undefined {
    if (notification === null) {
      this.options.pipeline.push(text);
      return undefined;
    }
    const tables = this.tablesOf(notification);
    if (tables === null) {
      this.options.pipeline.pushClassified(notification);
      return undefined;
    }
    const verdict = this.options.check.verdict(processId, tables.sources);
    if (typeof verdict === 'string') {
      this.apply(notification, processId, verdict, tables.cached);
      return undefined;
    }
    return verdict.then(
      (result) => this.apply(notification, processId, result, tables.cached),
      (error: unknown) => {
        this.options.logger.warn({ err: error, processId }, 'could not check the sender of a notification; reloading what it names instead');
        this.apply(notification, processId, 'unknown', tables.cached);
      },
    );
  }

  private apply(notification: Notification, processId: number, verdict: SenderVerdict, cached: readonly string[]): void {
    if (verdict === 'accept') this.options.pipeline.pushClassified(notification, { processId, verified: true });
    else if (verdict === 'reject') this.options.onRejected(processId, notification);
    else this.options.pipeline.requestNotifiedReload(cached, 'a change whose sender had exited before it could be checked', 'unverified_sender');
  }

  /** The source tables to check the sender against, and the cached tables they feed; `null` when nothing needs a check. */
  private tablesOf(notification: Notification): { sources: readonly string[]; cached: readonly string[] } | null {
    if (notification.kind === 'change') {
      const cached = this.options.mapper.tablesOf(notification.payload.t);
      return cached.length === 0 ? null : { sources: [notification.payload.t], cached };
    }
    if (notification.kind === 'malformed' && notification.table !== undefined) {
      const cached = this.options.mapper.tablesOf(notification.table);
      return cached.length === 0 ? null : { sources: [notification.table], cached };
    }
    if (notification.kind === 'unknownVersion') {
      const cached = notification.table === null ? [...this.options.tables] : this.options.mapper.tablesOf(notification.table);
      if (cached.length === 0) return null;
      return { sources: notification.table === null ? this.options.mapper.sourceTables() : [notification.table], cached };
    }
    return null;
  }

  private async drain(): Promise<void> {
    for (;;) {
      const next = this.held.shift();
      if (next === undefined) break;
      const done = this.pass(next.text, next.notification, next.processId);
      if (done !== undefined) await done;
    }
    this.draining = false;
  }
}

/**
 * Which senders' changes may prove a step's cut (the trigger mode's
 * `PostgresStepSnapshots` option `trustsSender`): those whose role may write
 * the source table, from a {@link SenderCheck}'s cache; a miss asks Postgres
 * in the background, and meanwhile the step waits for its own tick.
 */
export function cachedSenderTrust(pool: SenderCheckOptions['pool']): (processId: number, sourceTable: string) => boolean {
  const check = new SenderCheck({ pool });
  return (processId, sourceTable) => check.trusts(processId, sourceTable);
}

/** Options of {@link createSenderGate}. */
export interface DaemonSenderGateOptions extends Omit<SenderGateOptions, 'check' | 'onRejected'> {
  readonly pool: SenderCheckOptions['pool'];
  /** Called for each rejected notification (the daemon counts it). */
  readonly onRejected: () => void;
}

/**
 * The daemon's {@link SenderGate} (`daemon.verifySenders`): rejected
 * notifications are counted each, and logged at most once a second (a
 * forger's flood must not flood the log), with how many since the last line.
 */
export function createSenderGate(options: DaemonSenderGateOptions): SenderGate {
  let lastLogged = -Infinity;
  let unlogged = 0;
  return new SenderGate({
    ...options,
    check: new SenderCheck({ pool: options.pool }),
    onRejected: (processId, notification) => {
      options.onRejected();
      unlogged++;
      if (performance.now() - lastLogged < 1_000) return;
      const table = notification.kind === 'change' ? notification.payload.t : notification.kind === 'unknownVersion' || notification.kind === 'malformed' ? (notification.table ?? null) : null;
      options.logger.warn({ processId, table, rejected: unlogged }, 'rejected notifications from a session whose role may not write the table they name');
      lastLogged = performance.now();
      unlogged = 0;
    },
  });
}
