import pg from 'pg';
import type { Cluster, Redis } from 'ioredis';
import { waitForBarrier } from '../../lib/client/barrier.ts';
import type { TableReader } from '../../lib/client/index.ts';
import { TablecacheError } from '../../lib/core/errors.ts';
import { sendBarrier } from '../../lib/postgres/barrier.ts';
import { SCHEMA } from '../integration/daemon/daemonHarness.ts';
import type { SeededRandom } from './seededRandom.ts';

/**
 * The chaos suite's workload on the seed schema: writers doing a random mix
 * of changes, a probe that checks read-your-writes through the barrier, and
 * the write-then-read that measures recovery after a fault.
 */

/** The user whose nickname the stale-read probe stamps; no writer touches it. */
export const PROBE_USER_ID = 1_000_001;
/** The user whose nickname the recovery measurement stamps. */
export const RECOVERY_USER_ID = 1_000_002;
/**
 * The city of both probe users. No writer renames it or moves a user into
 * it (writers pick cities 1…cities), so only the probe's own writes change
 * their records: a missed change to them stays missed (the negative control
 * relies on that), instead of being repaired by a rename of their city.
 */
export const PROBE_CITY_ID = 1_000_001;

/** The writers' operations; `rollback` is a transaction that changes a row and rolls back. */
export const WRITE_OPERATIONS = ['renameUser', 'renameCity', 'moveUser', 'insertUser', 'deleteUser', 'updateMany', 'rollback'] as const;
/** One of {@link WRITE_OPERATIONS}. */
export type WriteOperation = (typeof WRITE_OPERATIONS)[number];

/** What the writers did. */
export interface WriterCounts {
  /** Committed transactions per operation (a rolled-back one counts under `rollback`). */
  readonly committed: Record<WriteOperation, number>;
  /** Transactions that failed (server down, connection cut, deadlock): expected during faults. */
  readonly failed: number;
}

/** Adds the two probe users to the seed tables, in a city of their own ({@link PROBE_CITY_ID}). */
export async function createProbeUsers(pool: pg.Pool): Promise<void> {
  await pool.query(`INSERT INTO ${SCHEMA}.cities VALUES ($1, 'Probe city')`, [PROBE_CITY_ID]);
  await pool.query(`INSERT INTO ${SCHEMA}.users VALUES ($1, 'Probe', 'stamp:0'), ($2, 'Recovery probe', 'stamp:0')`, [PROBE_USER_ID, RECOVERY_USER_ID]);
  await pool.query(`INSERT INTO ${SCHEMA}.users_cities VALUES ($1, $3), ($2, $3)`, [PROBE_USER_ID, RECOVERY_USER_ID, PROBE_CITY_ID]);
}

/**
 * A pool that survives server restarts: a connection cut while idle or
 * checked out is an 'error' event, which without a listener would end the
 * process; the failing query reports it to its caller anyway.
 */
export function resilientPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 2_000, application_name: 'tablecache-chaos' });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Concurrent writers, each its own seeded sequence of operations, until stopped. */
export class ChaosWriters {
  private readonly committed = Object.fromEntries(WRITE_OPERATIONS.map((operation) => [operation, 0])) as Record<WriteOperation, number>;
  private failed = 0;
  private nextUserId: number;
  private running = true;
  private readonly loops: Promise<void>[];

  /** Milliseconds between two transactions of one writer. */
  private readonly intervalMs: number;

  /**
   * @param users the seed's user count (ids 1…users; inserts continue after it)
   * @param cities the seed's city count
   * @param transactionsPerSecond the writers' combined pace: a fixed load the
   *   daemon can keep up with, so that freshness and recovery are measured
   *   rather than the backlog of a saturated machine
   */
  constructor(
    private readonly pool: pg.Pool,
    random: SeededRandom,
    writers: number,
    private readonly users: number,
    private readonly cities: number,
    transactionsPerSecond: number,
  ) {
    this.nextUserId = users + 1;
    this.intervalMs = (1000 * writers) / transactionsPerSecond;
    this.loops = Array.from({ length: writers }, (_, index) => this.loop(random.derive(`writer ${index}`)));
  }

  /** Stops after the transactions in flight and returns the counts. */
  async stop(): Promise<WriterCounts> {
    this.running = false;
    await Promise.all(this.loops);
    return { committed: { ...this.committed }, failed: this.failed };
  }

  private async loop(random: SeededRandom): Promise<void> {
    let nextAt = performance.now();
    while (this.running) {
      const operation = random.pick(WRITE_OPERATIONS);
      try {
        await this.transaction(operation, random);
        this.committed[operation]++;
      } catch {
        this.failed++;
      }
      // A writer that fell behind (a server was down) resumes the pace instead of catching up in a burst.
      nextAt = Math.max(nextAt + this.intervalMs, performance.now() - this.intervalMs);
      const wait = nextAt - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private async transaction(operation: WriteOperation, random: SeededRandom): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await this.statements(client, operation, random);
      await client.query(operation === 'rollback' ? 'ROLLBACK' : 'COMMIT');
      client.release();
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }

  private async statements(client: pg.PoolClient, operation: WriteOperation, random: SeededRandom): Promise<void> {
    const user = random.int(1, this.nextUserId - 1);
    const city = random.int(1, this.cities);
    const name = `${operation} ${random.int(0, 1_000_000)}`;
    switch (operation) {
      case 'renameUser':
      case 'rollback':
        await client.query(`UPDATE ${SCHEMA}.users SET name = $1 WHERE user_id = $2`, [name, user]);
        return;
      case 'renameCity':
        await client.query(`UPDATE ${SCHEMA}.cities SET name = $1 WHERE city_id = $2`, [name, city]);
        return;
      case 'moveUser':
        await client.query(`UPDATE ${SCHEMA}.users_cities SET city_id = $1 WHERE user_id = $2`, [city, user]);
        return;
      case 'insertUser': {
        const id = this.nextUserId++;
        await client.query(`INSERT INTO ${SCHEMA}.users VALUES ($1, $2, NULL)`, [id, name]);
        await client.query(`INSERT INTO ${SCHEMA}.users_cities VALUES ($1, $2)`, [id, city]);
        return;
      }
      case 'deleteUser':
        await client.query(`DELETE FROM ${SCHEMA}.users_cities WHERE user_id = $1`, [user]);
        await client.query(`DELETE FROM ${SCHEMA}.users WHERE user_id = $1`, [user]);
        return;
      case 'updateMany': {
        const first = random.int(1, Math.max(1, this.users - 20));
        await client.query(`UPDATE ${SCHEMA}.users SET nickname = $1 WHERE user_id BETWEEN $2 AND $3`, [name, first, first + random.int(2, 20)]);
        return;
      }
    }
  }
}

/** The number in a probe user's `stamp:N` nickname (-1 when the record is missing). */
export function stampOf(record: Record<string, unknown> | undefined): number {
  const nickname = record?.['user_nickname'];
  return typeof nickname === 'string' && nickname.startsWith('stamp:') ? Number(nickname.slice('stamp:'.length)) : -1;
}

/** Where the probe writes, sends barriers and reads. */
export interface ProbeTarget {
  readonly pool: pg.Pool;
  /** For waitForBarrier: a connection that fails fast while Redis is down or paused. */
  readonly redis: Redis | Cluster;
  readonly reader: TableReader<Record<string, unknown>>;
  readonly channel: string;
  readonly keyPrefix: string;
  /** How barriers are sent: the daemons' `capture.method`. */
  readonly method: 'triggers' | 'logical';
}

/**
 * How long a probe round waits for its barrier. A loaded 2-core machine
 * takes more than 2 s at times (a chaos run there once completed no round
 * in 2 s); a timed-out round promises nothing, so a long wait costs rounds,
 * never a wrong verdict.
 */
export const PROBE_BARRIER_TIMEOUT_MS = 10_000;

/** What the stale-read probe saw. */
export interface ProbeCounts {
  /** Rounds of stamp, barrier, read that completed (the barrier was reached and the read answered). */
  readonly checked: number;
  /** Reads after a reached barrier that returned an older stamp, or no record: must be 0. */
  readonly stale: number;
  readonly firstStale: string | null;
  /** Barriers not reached within the probe's timeout (expected while the daemon recovers; not stale reads). */
  readonly barrierTimeouts: number;
  /** Rounds where the write, the barrier or the read failed with an error (a server down). */
  readonly errors: number;
}

/**
 * The read-your-writes check: commit a new stamp on {@link PROBE_USER_ID},
 * send a barrier, wait for it, read the user through the reader client. A
 * reached barrier promises that the commit is visible, so an older stamp
 * then is a stale read. A timed-out barrier promises nothing and is counted
 * apart.
 */
export class StaleReadProbe {
  private readonly counts = { checked: 0, stale: 0, firstStale: null as string | null, barrierTimeouts: 0, errors: 0 };
  private running = true;
  private readonly done: Promise<void>;
  /** The last stamp known to be committed. */
  private committedStamp = 0;
  private nextStamp = 1;

  constructor(
    private readonly target: ProbeTarget,
    private readonly barrierTimeoutMs = PROBE_BARRIER_TIMEOUT_MS,
  ) {
    this.done = this.loop();
  }

  /** Rounds completed so far. */
  get checked(): number {
    return this.counts.checked;
  }

  async stop(): Promise<ProbeCounts> {
    this.running = false;
    await this.done;
    return { ...this.counts };
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.round();
      } catch (error) {
        if (error instanceof TablecacheError && error.code === 'TC_TIMEOUT' && error.message.startsWith('Barrier')) this.counts.barrierTimeouts++;
        else this.counts.errors++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  private async round(): Promise<void> {
    const { pool, redis, reader, channel, keyPrefix, method } = this.target;
    const stamp = this.nextStamp++;
    await pool.query(`UPDATE ${SCHEMA}.users SET nickname = $1 WHERE user_id = $2`, [`stamp:${stamp}`, PROBE_USER_ID]);
    this.committedStamp = stamp;
    const id = await sendBarrier(pool, { channel, method });
    await waitForBarrier(redis, id, { keyPrefix, timeoutMs: this.barrierTimeoutMs });
    const seen = stampOf(await reader.get(PROBE_USER_ID));
    this.counts.checked++;
    if (seen >= this.committedStamp) return;
    this.counts.stale++;
    this.counts.firstStale ??= `barrier ${id} reached after stamp ${this.committedStamp} was committed, then the reader returned ${seen === -1 ? 'no record' : `stamp ${seen}`}`;
  }
}

/**
 * Commits a new stamp on {@link RECOVERY_USER_ID} (retrying while Postgres
 * refuses) and waits until the reader returns it; resolves to the time that
 * took from `since` (performance.now() ms), or undefined when the deadline
 * passed first.
 */
export async function timeUntilWriteVisible(target: ProbeTarget, since: number, stamp: number, deadlineMs: number): Promise<number | undefined> {
  const deadline = since + deadlineMs;
  const poll = () => new Promise((resolve) => setTimeout(resolve, 20));
  for (;;) {
    if (performance.now() > deadline) return undefined;
    try {
      await target.pool.query(`UPDATE ${SCHEMA}.users SET nickname = $1 WHERE user_id = $2`, [`stamp:${stamp}`, RECOVERY_USER_ID]);
      break;
    } catch {
      await poll();
    }
  }
  for (;;) {
    try {
      if (stampOf(await target.reader.get(RECOVERY_USER_ID)) >= stamp) return performance.now() - since;
    } catch {
      // Redis down, or the table not loaded yet: not recovered yet.
    }
    if (performance.now() > deadline) return undefined;
    await poll();
  }
}
