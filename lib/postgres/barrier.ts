import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { InvalidArgumentError } from '../core/errors.ts';

/**
 * The read-your-writes barrier, sending side. A writer that must read its own
 * write from the cache calls {@link sendBarrier} after its commit: the barrier
 * is a NOTIFY on the daemon's channel, and since Postgres delivers
 * notifications in commit order, the daemon meets it only after every change
 * committed before it. Once it has applied all of those, it writes a mark in
 * Redis that `waitForBarrier` (tablecache/client) waits for.
 */

/** The barrier payload's format version. */
export const BARRIER_PAYLOAD_VERSION = 1;

/** What a barrier NOTIFY carries: `{"v":1,"op":"B","id":"…"}`. */
export interface BarrierPayload {
  readonly v: typeof BARRIER_PAYLOAD_VERSION;
  readonly op: 'B';
  /** A random id the daemon's mark is named by. */
  readonly id: string;
}

/** Ids are short and free of characters that need quoting in a Redis key. */
const BARRIER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The zod schema of {@link BarrierPayload}. */
export const barrierPayloadSchema = z.object({ v: z.literal(BARRIER_PAYLOAD_VERSION), op: z.literal('B'), id: z.string().regex(BARRIER_ID) });

/** Anything that runs a query: a `pg.Pool`, a `pg.Client`, a checked-out pool client. */
export interface BarrierQueryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** Options of {@link sendBarrier}. */
export interface SendBarrierOptions {
  /** The daemon's NOTIFY channel (`triggers.channel` of its config, default `tablecache_changes`). */
  readonly channel: string;
  /** The barrier id (default: a random UUID). */
  readonly id?: string;
  /**
   * How the daemon captures changes (its `capture.method`; default
   * `triggers`): a NOTIFY on the channel, or with `logical` a transactional
   * `pg_logical_emit_message` with the channel as its prefix, which the
   * replication stream delivers in commit order.
   */
  readonly method?: 'triggers' | 'logical';
}

/**
 * Sends a barrier and returns its id, to pass to `waitForBarrier`.
 *
 * Call it after the commit of the writes the reader must see (on a pool or an
 * idle client it runs in its own transaction). Called inside the writing
 * transaction it works too: the NOTIFY is delivered at that commit, after the
 * triggers' notifications of the same transaction.
 *
 * @throws {@link InvalidArgumentError} for an id that is not 1 to 64 letters, digits, `_` or `-`.
 * @example
 * ```ts
 * await pool.query('UPDATE users SET name = $1 WHERE user_id = $2', ['Ann', 7]);
 * const id = await sendBarrier(pool, { channel: 'tablecache_changes' });
 * await waitForBarrier(redis, id, { keyPrefix: 'tablecache:' });
 * const ann = await users.get(7); // the new name
 * ```
 */
export async function sendBarrier(db: BarrierQueryable, options: SendBarrierOptions): Promise<string> {
  const id = options.id ?? randomUUID();
  if (!BARRIER_ID.test(id)) throw new InvalidArgumentError(`A barrier id must be 1 to 64 letters, digits, _ or -, got ${JSON.stringify(id)}.`);
  const payload: BarrierPayload = { v: BARRIER_PAYLOAD_VERSION, op: 'B', id };
  const send = options.method === 'logical' ? 'SELECT pg_logical_emit_message(true, $1, $2)' : 'SELECT pg_notify($1, $2)';
  await db.query(send, [options.channel, JSON.stringify(payload)]);
  return id;
}
