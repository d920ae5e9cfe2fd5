import { InvalidArgumentError } from '../lib/core/errors.ts';

/**
 * A Postgres snapshot as `pg_current_snapshot()` prints it
 * (`xmin:xmax:xip,…`), with full 64-bit transaction ids.
 */
export interface PgSnapshot {
  /** Every transaction id below it had finished when the snapshot was taken. */
  readonly xmin: bigint;
  /** Every transaction id at or above it had not started yet. */
  readonly xmax: bigint;
  /** The transactions between xmin and xmax that were still running. */
  readonly xip: ReadonlySet<bigint>;
}

const SNAPSHOT_TEXT = /^(\d+):(\d+):((?:\d+(?:,\d+)*)?)$/;

/**
 * Parses the text form of a `pg_snapshot` (`pg_current_snapshot()::text`).
 *
 * @throws {@link InvalidArgumentError} for text that is not `xmin:xmax:xip,…`.
 */
export function parsePgSnapshot(text: string): PgSnapshot {
  const match = SNAPSHOT_TEXT.exec(text);
  if (match === null) throw new InvalidArgumentError(`Expected a Postgres snapshot as "xmin:xmax:xip,…" (pg_current_snapshot()::text), got ${JSON.stringify(text)}.`);
  const xip = match[3] === '' ? [] : match[3]!.split(',').map(BigInt);
  return { xmin: BigInt(match[1]!), xmax: BigInt(match[2]!), xip: new Set(xip) };
}

/**
 * Whether the changes of committed transaction `xid` are visible in
 * `snapshot`: `pg_visible_in_snapshot` for a transaction known to have
 * committed (every transaction that sent a notification has).
 */
export function visibleInSnapshot(snapshot: PgSnapshot, xid: bigint): boolean {
  if (xid < snapshot.xmin) return true;
  if (xid >= snapshot.xmax) return false;
  return !snapshot.xip.has(xid);
}
