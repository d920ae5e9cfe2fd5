import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { TablecacheError } from '../lib/core/errors.ts';
import { parsePgSnapshot, visibleInSnapshot, type PgSnapshot } from './pgSnapshot.ts';
import { parseLsn } from './logical/lsn.ts';
import { SnapshotSessions, type SnapshotSession } from './snapshotSessions.ts';
import { StreamPosition } from './streamPosition.ts';
import { WriterCommitPace } from './writerCommitPace.ts';
import type { ChangePayload } from '../sql-triggers/payload.ts';

/**
 * One pipeline step's view of Postgres: a REPEATABLE READ transaction whose
 * snapshot S is fixed, opened before the step decides what to apply.
 */
export interface StepSnapshot {
  /** Whether transaction `xid`'s changes are in S. */
  isVisible(xid: bigint): boolean;
  /** The session holding S, for reads that must see exactly S; `null` in tests without Postgres. */
  readonly session: pg.ClientBase | null;
  /** S as text (`xmin:xmax:xip`), for logs. */
  readonly text: string;
  /** Time spent opening S and waiting for its tick (or for the logical stream to pass S): the cost of the cut. */
  readonly tickMs: number;
  /**
   * Ticks it took: 1, or 2 when the first (sent with the snapshot's query)
   * committed before S was taken; with the logical capture, 0 when the stream
   * had passed S by the time S was known.
   */
  readonly ticks: number;
  /**
   * What proved the cut: the step's own `tick`, or a writer's `commit` after
   * S (a trusted writer's notification, or the logical stream passing S),
   * which came first.
   */
  readonly provenBy: CutProof;
  /**
   * Bounds every later statement of the snapshot's session (`SET LOCAL
   * statement_timeout`, so it ends with the transaction): a refresh or load
   * query that runs longer fails with SQLSTATE 57014 instead of holding its
   * table's steps. 0 lifts the bound.
   */
  limitStatements(timeoutMs: number): Promise<void>;
  /** Ends the transaction and returns the session; never rejects. */
  close(): Promise<void>;
}

/**
 * A step's snapshot S once it is fixed, before its cut is proven: the changes
 * already queued whose transaction is visible in S are certainly in the step,
 * so their records can be read in S while the proof is awaited.
 */
export interface TakenSnapshot {
  /** Whether transaction `xid`'s changes are in S. */
  isVisible(xid: bigint): boolean;
  /** The session holding S. */
  readonly session: pg.ClientBase;
}

/** What proved a step's cut ({@link StepSnapshot.provenBy}). */
export type CutProof = 'tick' | 'commit';

/** Where the pipeline gets each step's snapshot. */
export interface StepSnapshotSource {
  /**
   * Opens S and returns once every notification of a transaction visible in
   * S has been handed to the pipeline. `onTaken` is called once S is fixed,
   * before that wait: reads it starts in the session are in S, and overlap
   * the wait instead of following it.
   */
  open(onTaken?: (taken: TakenSnapshot) => void): Promise<StepSnapshot>;
  /** Takes a notification's raw text; `true` when it was one of this source's ticks (consumed). */
  acceptTick(text: string): boolean;
  /**
   * The LISTEN connection was `lost`, or is back after a loss (`restored`,
   * the default): notifications (ticks too) sent meanwhile are gone, so a
   * step waiting for its tick, or whose snapshot was opened before, fails
   * (and is retried); between the two, nothing that arrives proves a cut.
   */
  listenerReset(state?: 'lost' | 'restored'): void;
  /**
   * A change notification was handed to the pipeline (queued), from
   * `sender`: a writer's commit after S proves a cut as its tick would.
   */
  changeDelivered?(payload: ChangePayload, sender: NotificationSender): void;
}

/** Who sent a notification: LISTEN gives the sending backend's process id, which no payload can forge. */
export interface NotificationSender {
  readonly processId: number;
  /** Whether the sender check (`daemon.verifySenders`) accepted it already. */
  readonly verified: boolean;
}

/** Options of {@link PostgresStepSnapshots}. */
export interface PostgresStepSnapshotsOptions {
  /** Sessions for snapshots and ticks (on the primary, where the daemon LISTENs). */
  readonly pool: pg.Pool;
  /** The daemon's LISTEN channel. */
  readonly channel: string;
  /** How long a tick may take to come back before the step is abandoned (default 10,000 ms). */
  readonly tickTimeoutMs?: number;
  /**
   * The statement timeout each snapshot starts with (ms; default 0: none),
   * set in the same round trip that opens it: the one most steps ask for (the
   * refresh timeout), so that {@link StepSnapshot.limitStatements} costs a
   * round trip only for another value.
   */
  readonly statementTimeoutMs?: number;
  /**
   * The most snapshots open at once (default: unbounded). Each holds a pool
   * session while it needs another for its tick: below the pool's size, so
   * that tables stepping at once never take every session and starve their
   * own ticks; an open beyond it waits for a close.
   */
  readonly maxOpen?: number;
  /**
   * How ticks travel (default `notify`): a NOTIFY on the channel, or, for the
   * logical change source, `logicalMessage`: a non-transactional
   * `pg_logical_emit_message` with the channel as its prefix, which the
   * replication stream delivers in WAL order among the commits.
   */
  readonly tick?: 'notify' | 'logicalMessage';
  /**
   * How long a closed snapshot's session waits for the next open before its
   * transaction is rolled back on a round trip of its own (default 20 ms; 0:
   * at once): steps at more than 50 a second each save that round trip, and
   * an idle daemon holds no snapshot (nor the locks of its reads) for longer
   * ({@link SnapshotSessions}).
   */
  readonly parkMs?: number;
  /**
   * Whether a change's sender may write its source table, from a cache
   * (`SenderCheck.trusts`): only such a writer's notification may prove a
   * cut (its payload's xid is what it claims), so that a role that can only
   * NOTIFY cannot make a step miss changes. Without it, only ticks prove.
   */
  readonly trustsSender?: (processId: number, sourceTable: string) => boolean;
  /** Tracks the trusted writers' pace (default a new {@link WriterCommitPace}); tests pass one that decides for them. */
  readonly writerPace?: Pick<WriterCommitPace, 'active' | 'committed' | 'graceMs'>;
  /** Called with each tick transaction's 64-bit id: a recent id, for whoever widens 32-bit ids. */
  readonly onTickXid?: (xid: bigint) => void;
}

const BEGIN_SNAPSHOT = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

/** A statement timeout as SET takes it (SET takes no parameters): a whole number of ms, 0 for none. */
function statementTimeoutValue(timeoutMs: number): number {
  return Number.isFinite(timeoutMs) && timeoutMs > 0 ? Math.floor(timeoutMs) : 0;
}

/**
 * The statement that fixes S (the first of the transaction) and prints it;
 * with the logical capture, also where the WAL ends right after S was taken:
 * every transaction visible in S wrote its commit record before that.
 */
const SNAPSHOT = 'SELECT pg_current_snapshot()::text AS s';
const SNAPSHOT_AND_WAL_POSITION = 'SELECT pg_current_snapshot()::text AS s, pg_current_wal_insert_lsn()::text AS l';

/** A NOTIFY cut under way: the trusted changes received before S was known, then S and how to end its wait. */
interface OpenCut {
  snapshot: PgSnapshot | null;
  /** Transaction ids of trusted changes delivered while S was not known yet. */
  readonly seen: bigint[];
  prove: (() => void) | null;
}

/** A NOTIFY tick needs ordering, not durability: its commit need not wait for the WAL flush. */
const NOTIFY_TICK = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2), pg_current_xact_id()::text AS xid";

/**
 * A logical tick: logical decoding reads only flushed WAL, and a message
 * alone is never flushed by its transaction's end; the xid makes the commit
 * write a commit record and flush it (`local`: not waiting for synchronous
 * standbys), so the walsender sees the tick at once.
 */
const LOGICAL_TICK = "SELECT set_config('synchronous_commit', 'local', true), pg_logical_emit_message(false, $1, $2), pg_current_xact_id()::text AS xid";

/**
 * The SQLSTATEs with which the server ends a session it holds idle:
 * idle_in_transaction_session_timeout, transaction_timeout (Postgres 17),
 * pg_terminate_backend and a crash of another backend.
 */
const SESSION_ENDED_STATES = new Set(['25P03', '25P04', '57P01', '57P02']);

/** Whether `error` says that `session`'s connection is gone (not that its statement failed). */
function sessionEnded(session: SnapshotSession, error: unknown): boolean {
  if (session.lost !== undefined) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === 'string' && SESSION_ENDED_STATES.has(code)) || (error instanceof Error && /Connection terminated|not queryable/.test(error.message));
}

/** The start of every tick payload: the daemon's own marker, never a trigger's or a barrier's. */
const TICK_PREFIX = '{"op":"tablecache_tick","id":"';

/** Whether a notification's text is a snapshot tick (of any daemon on the channel), not a change or a barrier. */
export function isTickText(text: string): boolean {
  return text.startsWith(TICK_PREFIX);
}

/**
 * The snapshot-consistent cut, on Postgres. Each step:
 *
 * 1. opens a REPEATABLE READ transaction and reads `pg_current_snapshot()`:
 *    S is fixed by that first statement (on the logical slot, the same
 *    statement reads where the WAL ends);
 * 2. waits for proof that every change of a transaction visible in S has
 *    reached the pipeline: a commit after S delivered in commit order. With
 *    NOTIFY that is a trusted writer's change whose xid is not visible in S
 *    (notifying commits are serialised) or the step's own "tick" NOTIFY; on
 *    the slot, the stream passing the WAL position read with S, or the
 *    step's logical-message tick. While writers commit every few ms the tick
 *    waits for S and a short grace; otherwise a NOTIFY tick goes out with
 *    the snapshot's query, and a second one when the first committed before
 *    S was taken (its xid is visible in S).
 *
 * A tick carries a random id per daemon and a counter, so the ticks of
 * another daemon on the same channel are ignored.
 */
export class PostgresStepSnapshots implements StepSnapshotSource {
  private readonly nonce = randomUUID();
  private counter = 0;
  private readonly waiting = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  /** Counts {@link listenerReset} calls: a step whose S spans one cannot trust its tick. */
  private resets = 0;
  private readonly sessions: SnapshotSessions;
  /** NOTIFY: the cuts waiting for proof, which a trusted writer's change may give ({@link changeDelivered}). */
  private readonly cuts = new Set<OpenCut>();
  /** NOTIFY: how often trusted writers' changes arrive, which decides whether a cut sends its tick at once. */
  private readonly writers: Pick<WriterCommitPace, 'active' | 'committed' | 'graceMs'>;
  /** Logical capture: where the stream is ({@link streamReached}), and the steps waiting for it to get further. */
  private readonly stream = new StreamPosition();
  /** Between a lost LISTEN connection and its confirmed return ({@link listenerReset}). */
  private listenerDown = false;
  private readonly logical: boolean;

  constructor(private readonly options: PostgresStepSnapshotsOptions) {
    this.logical = options.tick === 'logicalMessage';
    this.sessions = new SnapshotSessions(options);
    this.writers = options.writerPace ?? new WriterCommitPace();
  }

  async open(onTaken?: (taken: TakenSnapshot) => void): Promise<StepSnapshot> {
    let session: SnapshotSession | null = await this.sessions.take();
    const resetsBefore = this.resets;
    const cut: OpenCut = { snapshot: null, seen: [], prove: null };
    try {
      const started = performance.now();
      let limitMs = statementTimeoutValue(this.options.statementTimeoutMs ?? 0);
      const wasParked = session.parked;
      const reading = this.beginSnapshot(session, limitMs);
      // A logical message proves the cut only when written after S was taken (WAL order is not visibility order):
      // it never races the snapshot's query.
      // While trusted writers commit, one of their notifications usually proves the cut before a tick could:
      // the tick then waits for S and a short grace, instead of queueing on the notify lock behind them.
      const firstTick = this.logical || this.writers.active() ? null : this.tick();
      firstTick?.catch(() => undefined);
      if (!this.logical) this.cuts.add(cut);
      let results: pg.QueryResult<{ s: string; l?: string }>[];
      try {
        results = await reading;
      } catch (error) {
        if (!wasParked || !sessionEnded(session, error)) throw error;
        // The server ended the parked session while it waited (an idle_in_transaction_session_timeout below the
        // park time, a terminated backend): S is taken on another one. A first tick that commits before it is then
        // visible in S, and a second one proves the cut.
        this.sessions.discard(session, error instanceof Error ? error : new Error(String(error)));
        // Discarded once: a take that fails below leaves nothing for the catch to discard again.
        session = null;
        session = await this.sessions.take();
        results = await this.beginSnapshot(session, limitMs);
      }
      const held = session;
      const row = results[results.length - 2]!.rows[0]!;
      const text = row.s;
      const snapshot = parsePgSnapshot(text);
      onTaken?.({ isVisible: (xid) => visibleInSnapshot(snapshot, xid), session: held.client });
      const { ticks, provenBy } = this.logical ? await this.streamedPast(parseLsn(row.l!)) : await this.notifiedPast(cut, snapshot, firstTick);
      if (this.resets !== resetsBefore) {
        // Notifications committed while LISTEN was down may be visible in S and never arrive.
        throw new TablecacheError('TC_CONNECTION_FAILED', 'The LISTEN connection was lost while a snapshot was open; the step is retried after the resync.');
      }
      const tickMs = performance.now() - started;
      let closed = false;
      return {
        isVisible: (xid) => visibleInSnapshot(snapshot, xid),
        session: held.client,
        text,
        tickMs,
        ticks,
        provenBy,
        limitStatements: async (timeoutMs) => {
          const value = statementTimeoutValue(timeoutMs);
          if (value === limitMs) return;
          await held.client.query(`SET LOCAL statement_timeout = ${value}`);
          limitMs = value;
        },
        close: async () => {
          if (closed) return;
          closed = true;
          this.sessions.park(held);
        },
      };
    } catch (error) {
      // The transaction may be half open: discard the session rather than reuse it.
      if (session !== null) this.sessions.discard(session, error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      this.cuts.delete(cut);
    }
  }

  /**
   * Sends the statement that opens S on `session` (a parked session's
   * `ROLLBACK` first, in the same round trip) and bounds its statements.
   */
  private beginSnapshot(session: SnapshotSession, limitMs: number): Promise<pg.QueryResult<{ s: string; l?: string }>[]> {
    const opening = `${session.parked ? 'ROLLBACK; ' : ''}${BEGIN_SNAPSHOT}; ${this.logical ? SNAPSHOT_AND_WAL_POSITION : SNAPSHOT}; SET LOCAL statement_timeout = ${limitMs}`;
    const reading = session.client.query(opening) as unknown as Promise<pg.QueryResult<{ s: string; l?: string }>[]>;
    session.parked = false;
    return reading;
  }

  /**
   * NOTIFY: waits until every notification of a transaction visible in
   * `snapshot` has been received. Its first tick proves that when its xid is
   * not visible in S; when it raced the snapshot's query a second tick, sent
   * now, does. So does, first, any trusted writer's change whose transaction
   * is not visible in S ({@link changeDelivered}): it committed after S was
   * taken, and notifying commits are serialised and delivered in commit
   * order. Returns the ticks sent, and which proof came first.
   */
  private async notifiedPast(cut: OpenCut, snapshot: PgSnapshot, eagerTick: Promise<bigint> | null): Promise<{ ticks: number; provenBy: CutProof }> {
    cut.snapshot = snapshot;
    const sent = eagerTick === null ? 0 : 1;
    if (cut.seen.some((xid) => !visibleInSnapshot(snapshot, xid))) return { ticks: sent, provenBy: 'commit' };
    const proven = new Promise<'proven'>((resolve) => (cut.prove = () => resolve('proven')));
    // Sent after S is known, a tick cannot race it.
    if (eagerTick === null) return this.graceThenTick(proven);
    const first = await Promise.race([eagerTick, proven]);
    if (first === 'proven') return { ticks: 1, provenBy: 'commit' };
    if (!visibleInSnapshot(snapshot, first)) return { ticks: 1, provenBy: 'tick' };
    const second = await Promise.race([this.tick(), proven]);
    return { ticks: 2, provenBy: second === 'proven' ? 'commit' : 'tick' };
  }

  changeDelivered(payload: ChangePayload, sender: NotificationSender): void {
    if (this.listenerDown) return;
    if (!sender.verified && !(this.options.trustsSender?.(sender.processId, payload.t) ?? false)) return;
    this.writers.committed();
    if (this.cuts.size === 0) return;
    const xid = BigInt(payload.xid);
    for (const cut of this.cuts) {
      if (cut.snapshot === null) cut.seen.push(xid);
      else if (!visibleInSnapshot(cut.snapshot, xid)) cut.prove?.();
    }
  }

  /**
   * Logical capture: the replication stream has handed the pipeline every
   * transaction whose commit record ends at or before `lsn` (it delivers in
   * commit order). A step whose snapshot was taken before `lsn` was written
   * needs no tick of its own.
   */
  streamReached(lsn: bigint): void {
    if (this.stream.reached(lsn)) this.writers.committed();
  }

  /**
   * Waits until the stream has delivered every transaction visible in a
   * snapshot taken before WAL position `lsn` was written (each of them
   * wrote its commit record before it): the stream reaching `lsn` (any
   * later commit, of any writer), or the step's own tick, a message written
   * after `lsn`, whichever comes first; while commits stream in every few ms
   * ({@link WriterCommitPace}), the tick waits a short grace for them first.
   * Returns the ticks sent (0 or 1), and which proof came first.
   */
  private async streamedPast(lsn: bigint): Promise<{ ticks: number; provenBy: CutProof }> {
    if (this.stream.passed(lsn)) return { ticks: 0, provenBy: 'commit' };
    const { reached, cancel } = this.stream.waitFor(lsn);
    try {
      return await this.graceThenTick(reached);
    } finally {
      cancel();
    }
  }

  /**
   * For a cut whose S is known: while writers commit every few ms, one of
   * their commits (`proven`) usually proves it before a tick could, so it
   * gets a grace first; then the step's tick, sent now (after S: no race),
   * and whichever proof comes first. Returns the ticks sent and that proof.
   */
  private async graceThenTick(proven: Promise<unknown>): Promise<{ ticks: number; provenBy: CutProof }> {
    const byCommit = proven.then(() => 'commit' as const);
    if (this.writers.active() && (await Promise.race([byCommit, delay(this.writers.graceMs())])) === 'commit') return { ticks: 0, provenBy: 'commit' };
    return { ticks: 1, provenBy: await Promise.race([byCommit, this.tick().then(() => 'tick' as const)]) };
  }

  /** Rolls back and returns every parked session; later closes return theirs at once. */
  close(): Promise<void> {
    return this.sessions.close();
  }

  acceptTick(text: string): boolean {
    if (!isTickText(text)) return false;
    if (this.listenerDown) return true;
    const id = text.slice(TICK_PREFIX.length, -2);
    this.waiting.get(id)?.resolve();
    return true;
  }

  listenerReset(state: 'lost' | 'restored' = 'restored'): void {
    // From the loss until LISTEN is confirmed back, notifications may already arrive on the new connection while
    // those sent in between are gone: nothing that arrives then proves a cut.
    this.listenerDown = state === 'lost';
    this.resets++;
    this.stream.reset();
    for (const waiter of this.waiting.values()) {
      waiter.reject(new TablecacheError('TC_CONNECTION_FAILED', 'The LISTEN connection was lost (or restored) while waiting for a snapshot tick; the step is retried.'));
    }
  }

  /** Sends a tick, waits for it to come back on the LISTEN connection, and returns the tick transaction's id. */
  private async tick(): Promise<bigint> {
    const id = `${this.nonce}-${++this.counter}`;
    const timeoutMs = this.options.tickTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      timer = setTimeout(
        () => reject(new TablecacheError('TC_TIMEOUT', `A snapshot tick did not come back on the LISTEN connection within ${timeoutMs} ms; retrying the step.`)),
        timeoutMs,
      );
      // A tick whose cut the stream proved first may still be on its way: it must not keep a stopping process up.
      timer.unref();
    });
    // Handled below; until then a rejection (reset, timeout) must not count as unhandled.
    arrived.catch(() => undefined);
    try {
      const sent = await this.options.pool.query<{ xid: string }>(this.options.tick === 'logicalMessage' ? LOGICAL_TICK : NOTIFY_TICK, [this.options.channel, `${TICK_PREFIX}${id}"}`]);
      const xid = BigInt(sent.rows[0]!.xid);
      this.options.onTickXid?.(xid);
      await arrived;
      return xid;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(id);
    }
  }
}
