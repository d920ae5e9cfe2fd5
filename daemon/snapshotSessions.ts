import type pg from 'pg';

/** Options of {@link SnapshotSessions}: where sessions come from and how many a step may hold. */
export interface SnapshotSessionsOptions {
  /** The daemon's pool (on the primary). */
  readonly pool: pg.Pool;
  /** The most sessions held at once (default: unbounded); a {@link SnapshotSessions.take} beyond it waits for a return. */
  readonly maxOpen?: number;
  /**
   * How long a returned session waits, its transaction still open, for the
   * next {@link SnapshotSessions.take} (default 20 ms; 0: it is rolled back
   * at once).
   */
  readonly parkMs?: number;
}

/** A pool session that holds step snapshots, one at a time. */
export interface SnapshotSession {
  readonly client: pg.PoolClient;
  /** Whether it still holds a closed snapshot's transaction, which its next user rolls back (in its own first round trip). */
  parked: boolean;
  /** The connection's error, once it failed: the session is then destroyed, not reused. */
  lost: Error | undefined;
  rollbackTimer: NodeJS.Timeout | undefined;
  readonly onError: (error: Error) => void;
}

/** The default of {@link SnapshotSessionsOptions.parkMs}. */
const DEFAULT_PARK_MS = 20;

/**
 * The sessions that hold step snapshots: at most `maxOpen` at once, and a
 * closed snapshot's session kept ("parked") with its read-only transaction
 * still open, so that the next step's `BEGIN` carries its `ROLLBACK`: one
 * round trip fewer per step. A parked session no step takes within `parkMs`
 * is rolled back and returned to the pool, so that an idle daemon holds no
 * snapshot (it would hold back vacuum) and no lock of its reads.
 */
export class SnapshotSessions {
  private openCount = 0;
  /** Takes waiting for {@link SnapshotSessionsOptions.maxOpen}, first come first served. */
  private readonly waitingToOpen: (() => void)[] = [];
  private readonly parked: SnapshotSession[] = [];
  private readonly parkMs: number;
  private closed = false;

  constructor(private readonly options: SnapshotSessionsOptions) {
    this.parkMs = options.parkMs ?? DEFAULT_PARK_MS;
  }

  /** A parked session (its slot held already; `parked` tells the caller to roll back first), or a new one once a slot is free. */
  async take(): Promise<SnapshotSession> {
    for (let parked = this.parked.pop(); parked !== undefined; parked = this.parked.pop()) {
      clearTimeout(parked.rollbackTimer);
      if (parked.lost === undefined) return parked;
      // Ended while parked (by the server's idle_in_transaction_session_timeout, say): its slot goes back.
      this.discard(parked);
    }
    await this.acquire();
    let client: pg.PoolClient;
    try {
      client = await this.options.pool.connect();
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
    const session: SnapshotSession = {
      client,
      parked: false,
      lost: undefined,
      rollbackTimer: undefined,
      onError: (error: Error) => {
        session.lost = error;
      },
    };
    client.on('error', session.onError);
    return session;
  }

  /** Takes a session back whose snapshot is closed: parked for the next {@link take}, or rolled back and returned to the pool. */
  park(session: SnapshotSession): void {
    // A take waiting for a slot gets this one at once instead.
    if (session.lost !== undefined || this.closed || this.waitingToOpen.length > 0 || this.parkMs === 0) {
      void this.rollBack(session);
      return;
    }
    session.parked = true;
    session.rollbackTimer = setTimeout(() => {
      this.parked.splice(this.parked.indexOf(session), 1);
      void this.rollBack(session);
    }, this.parkMs);
    session.rollbackTimer.unref();
    this.parked.push(session);
  }

  /** Returns a session to the pool, destroyed with `error` (its transaction may be half open), and frees its slot. */
  discard(session: SnapshotSession, error?: Error): void {
    session.client.removeListener('error', session.onError);
    session.client.release(error ?? session.lost);
    this.releaseSlot();
  }

  /** Rolls back and returns every parked session; sessions taken back later are returned at once. */
  async close(): Promise<void> {
    this.closed = true;
    const parked = this.parked.splice(0);
    for (const session of parked) clearTimeout(session.rollbackTimer);
    await Promise.all(parked.map((session) => this.rollBack(session)));
  }

  /** Ends a session's transaction and returns it to the pool; never rejects. */
  private async rollBack(session: SnapshotSession): Promise<void> {
    try {
      // Read only: nothing to commit.
      if (session.lost === undefined) await session.client.query('ROLLBACK');
      this.discard(session);
    } catch (error) {
      this.discard(session, error instanceof Error ? error : new Error(String(error)));
    }
  }

  private async acquire(): Promise<void> {
    if (this.options.maxOpen === undefined || this.openCount < this.options.maxOpen) {
      this.openCount++;
      return;
    }
    // The slot is handed over by releaseSlot: the count stays.
    await new Promise<void>((resolve) => this.waitingToOpen.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.waitingToOpen.shift();
    if (next !== undefined) next();
    else this.openCount--;
  }
}
