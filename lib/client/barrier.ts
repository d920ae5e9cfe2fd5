import type { Cluster, Redis } from 'ioredis';
import { InvalidArgumentError, TablecacheError } from '../core/errors.ts';
import { DEFAULT_KEY_PREFIX, TableKeys } from '../redis/keyLayout.ts';
import { toTablecacheError } from '../redis/redisErrors.ts';

/**
 * The read-your-writes barrier, waiting side: the daemon sets the mark of a
 * barrier once it has applied every change committed before the barrier's
 * NOTIFY (`sendBarrier` in tablecache/postgres), and {@link waitForBarrier}
 * waits for that mark. Redis only: no Postgres here.
 */

/** How long the daemon keeps a barrier mark: long enough for any waiter, short enough to leave nothing behind. */
export const BARRIER_MARK_TTL_MS = 60_000;

/**
 * The Redis key of a barrier's mark: `{<keyPrefix>}barrier:<id>`. The hash
 * tag keeps it under the same ACL key pattern as the tables (`{<keyPrefix>*`),
 * so a read-only reader may wait on it; no table key has this shape, since
 * table names are never empty.
 */
export function barrierMarkKey(keyPrefix: string, id: string): string {
  return `{${keyPrefix}}barrier:${id}`;
}

/**
 * The Redis key of a barrier's mark for one table:
 * `{<keyPrefix><table>}:barrier:<id>` (`{<keyPrefix><hashTag>}<table>:barrier:<id>`
 * for a table placed with a hash tag), set once that table has applied the
 * barrier. It lives in the table's own hash tag, so in the table's Cluster
 * slot and on the same replication stream as the table's data: a replica
 * that has the mark has the step that applied the barrier.
 */
export function tableBarrierMarkKey(keyPrefix: string, table: string, id: string, hashTag?: string): string {
  return `${new TableKeys(table, keyPrefix, hashTag).base}barrier:${id}`;
}

/**
 * The Redis key where the daemon lists the tables a barrier still waits
 * for: `{<keyPrefix>}barrier-behind:<id>`, a JSON array of
 * {@link BarrierBehindTable}, written while the barrier waits on a table
 * that is slow or failing (same TTL as the mark).
 */
export function barrierBehindKey(keyPrefix: string, id: string): string {
  return `{${keyPrefix}}barrier-behind:${id}`;
}

/** One table a barrier still waits for, as the daemon wrote it under {@link barrierBehindKey}. */
export interface BarrierBehindTable {
  readonly table: string;
  /** Why, when the table's last step failed (the error's message); absent while its step is merely running. */
  readonly reason?: string;
}

/** A barrier's mark did not appear in time (code `TC_TIMEOUT`). */
export class BarrierTimeoutError extends TablecacheError {
  /**
   * @param behindTables The tables the daemon reported the barrier still waits for (empty when it reported none:
   * it is down, listens elsewhere, or no table had finished a step since the barrier arrived).
   * @param laggingTables Tables whose mark the primary has but the replica a reader reads does not: replication lag.
   */
  constructor(
    readonly barrierId: string,
    readonly timeoutMs: number,
    readonly behindTables: readonly BarrierBehindTable[] = [],
    readonly laggingTables: readonly string[] = [],
  ) {
    super('TC_TIMEOUT', timeoutMessage(barrierId, timeoutMs, behindTables, laggingTables));
  }
}

function timeoutMessage(id: string, timeoutMs: number, behind: readonly BarrierBehindTable[], lagging: readonly string[]): string {
  const start = `Barrier ${id} was not reached within ${timeoutMs} ms`;
  if (lagging.length > 0) {
    return (
      `${start}: the primary has it for table(s) ${lagging.join(', ')}, the replica the reader reads does not yet; replication lag is the likely cause. ` +
      "Wait longer, read from the primary (readFrom: 'primary'), or check the replica's link to its primary."
    );
  }
  if (behind.length > 0) {
    return (
      `${start}: the daemon has not applied it to table(s) ` +
      `${behind.map(({ table, reason }) => (reason === undefined ? `${table} (its step is still running)` : `${table} (failing: ${reason})`)).join(', ')}. ` +
      'Read from Postgres instead, or wait longer.'
    );
  }
  return `${start}: the daemon is behind, down, or listens on another channel or key prefix. Read from Postgres instead, or wait longer.`;
}

/** Reads the daemon's list of tables a barrier waits for; empty when there is none or it cannot be read. */
async function readBehindTables(redis: Redis | Cluster, keyPrefix: string, id: string): Promise<BarrierBehindTable[]> {
  try {
    const text = await redis.get(barrierBehindKey(keyPrefix, id));
    if (text === null) return [];
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null || typeof (entry as { table?: unknown }).table !== 'string') return [];
      const { table, reason } = entry as { table: string; reason?: unknown };
      return [typeof reason === 'string' ? { table, reason } : { table }];
    });
  } catch {
    // The timeout is the error to report; this list only explains it.
    return [];
  }
}

/** Options of {@link waitForBarrier}. */
export interface WaitForBarrierOptions {
  /** The key prefix the daemon writes under (`redis.keyPrefix` of its config; default `tablecache:`). */
  readonly keyPrefix?: string;
  /** How long to wait (default 5,000 ms). */
  readonly timeoutMs?: number;
  /** Stops the wait; it then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** What {@link waitForBarrier} needs of a reader with a near-cache. */
interface NearCachedReader {
  readonly keyPrefix: string;
  readonly table: string;
  /** Reads the table's step and keeps the near-cache from answering until its change stream has reached it. */
  raiseFloor(): Promise<void>;
}

/** The open readers with a near-cache in this process: a barrier must reach their caches too. */
const nearCachedReaders = new Set<NearCachedReader>();

/** @internal Called by a reader that opens a near-cache; returns the function that unregisters it. */
export function registerNearCachedReader(reader: NearCachedReader): () => void {
  nearCachedReaders.add(reader);
  return () => nearCachedReaders.delete(reader);
}

/** What {@link waitForBarrier} needs of a reader (a `TableReader`): its table, and the connection its reads go to. */
interface BarrierReader {
  readonly table: string;
  /** @internal */
  readonly barrierView: {
    readonly keyPrefix: string;
    readonly hashTag?: string | undefined;
    /** The connection the reader's reads go to (a replica included). */
    readonly redis: Redis | Cluster;
    /** Whether the primary behind a replica connection holds `key`; null when it reads the primary or cannot tell. */
    primaryHasKey(key: string): Promise<boolean | null>;
  };
}

/** Where {@link waitForBarrier} waits: a Redis connection, or the reader(s) whose tables will be read next. */
export type BarrierWaitTarget = Redis | Cluster | BarrierReader | readonly BarrierReader[];

const FIRST_POLL_MS = 0.5;
const MAX_POLL_MS = 20;

/** One mark to wait for, and on which connection. */
interface MarkWait {
  readonly key: string;
  readonly redis: Redis | Cluster;
  /** The reader, when waiting on a table's mark for it. */
  readonly reader?: BarrierReader;
}

function isReader(target: BarrierWaitTarget): target is BarrierReader {
  return typeof (target as Partial<BarrierReader>).barrierView === 'object';
}

/**
 * Resolves once barrier `id` is reached, i.e. every change committed
 * before `sendBarrier` returned is visible to the reads that follow.
 *
 * - **Given readers** (`waitForBarrier(users, id)` or `[users, orders]`):
 *   waits until each reader's table has applied the barrier, on the
 *   connection that reader reads from: on a replica, until the replica has
 *   it. Use this form when readers read replicas (`readFrom`) or a Cluster.
 *   The keyPrefix is the readers'.
 * - **Given a connection**: waits on it until the daemon has applied the
 *   barrier to every table (one mark, `{<keyPrefix>}barrier:<id>`). It holds
 *   for reads from that Redis's primaries; a replica may not have it yet.
 *
 * Readers with a near-cache in this process (same key prefix; with readers
 * given, of those tables) are included: after the mark, each reads its
 * table's step (one read each) and answers nothing from its near-cache until
 * its change stream has reached that step, so a read after this returns
 * never comes from before the barrier.
 *
 * Polls, starting at half a millisecond and backing off to 20 ms, so a
 * reached barrier is seen within about a millisecond while a slow daemon
 * costs few round trips; the caller's connection is never blocked.
 *
 * @throws {@link BarrierTimeoutError} (`TC_TIMEOUT`) when the mark does not appear within `timeoutMs`; its message and
 * `behindTables` name the tables the daemon reported the barrier still waits for (a slow or failing table), and
 * `laggingTables` those whose mark the primary has but the reader's replica does not (replication lag).
 * @throws {@link InvalidArgumentError} for a non-positive timeout or an empty list of readers.
 */
export async function waitForBarrier(on: BarrierWaitTarget, id: string, options: WaitForBarrierOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  if (!(timeoutMs > 0)) throw new InvalidArgumentError(`timeoutMs must be a positive number of ms, got ${timeoutMs}.`);
  const readers = Array.isArray(on) ? (on as readonly BarrierReader[]) : isReader(on as BarrierWaitTarget) ? [on as BarrierReader] : null;
  if (readers !== null && readers.length === 0) throw new InvalidArgumentError('Give waitForBarrier at least one reader, or a Redis connection.');
  const keyPrefix = readers?.[0]?.barrierView.keyPrefix ?? options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  let waits: MarkWait[] =
    readers === null
      ? [{ key: barrierMarkKey(keyPrefix, id), redis: on as Redis | Cluster }]
      : readers.map((reader) => ({ key: tableBarrierMarkKey(reader.barrierView.keyPrefix, reader.table, id, reader.barrierView.hashTag), redis: reader.barrierView.redis, reader }));
  const deadline = performance.now() + timeoutMs;
  for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, MAX_POLL_MS)) {
    options.signal?.throwIfAborted();
    let marked: number[];
    try {
      marked = await Promise.all(waits.map(({ key, redis }) => redis.exists(key)));
    } catch (error) {
      throw toTablecacheError(error, `waiting for barrier ${id}`);
    }
    waits = waits.filter((_, index) => marked[index] !== 1);
    if (waits.length === 0) {
      const tables = readers === null ? null : new Set(readers.map(({ table }) => table));
      const included = [...nearCachedReaders].filter((reader) => reader.keyPrefix === keyPrefix && (tables === null || tables.has(reader.table)));
      await Promise.all(included.map((reader) => reader.raiseFloor()));
      return;
    }
    const left = deadline - performance.now();
    if (left <= 0) throw await timeoutError(id, timeoutMs, keyPrefix, waits);
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}

/** The timeout, explained: tables the daemon reported behind, and tables whose mark is on the primary but not on the reader's replica. */
async function timeoutError(id: string, timeoutMs: number, keyPrefix: string, waits: readonly MarkWait[]): Promise<BarrierTimeoutError> {
  const lagging = await Promise.all(waits.map(async ({ key, reader }) => (reader !== undefined && (await reader.barrierView.primaryHasKey(key)) === true ? reader.table : null)));
  return new BarrierTimeoutError(
    id,
    timeoutMs,
    await readBehindTables(waits[0]!.redis, keyPrefix, id),
    [...new Set(lagging.filter((table): table is string => table !== null))],
  );
}
