import { InvalidArgumentError } from '../../lib/core/errors.ts';

/**
 * A WAL position (`pg_lsn`) as a 64-bit number: Postgres prints it as two
 * hexadecimal halves (`16/B374D848`), which do not compare as text.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/**
 * Parses the text form of a `pg_lsn` (`16/B374D848`).
 *
 * @throws {@link InvalidArgumentError} for text that is not two hexadecimal halves.
 */
export function parseLsn(text: string): Lsn {
  const match = LSN_TEXT.exec(text);
  if (match === null) throw new InvalidArgumentError(`Expected a WAL position as "XXXXXXXX/XXXXXXXX" (pg_lsn), got ${JSON.stringify(text)}.`);
  return (BigInt(`0x${match[1]!}`) << 32n) | BigInt(`0x${match[2]!}`);
}

/** The text form of a WAL position, as Postgres prints it (`16/B374D848`). */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The 64-bit transaction id (`xid8`, as snapshots print it) of a 32-bit xid
 * the replication stream carries, given a recent 64-bit id `reference`: a
 * committed transaction the stream delivers is less than 2^31 ids away from
 * it (Postgres's wraparound protection), so the nearest id with those low 32
 * bits is the one.
 */
export function fullXid(xid: number, reference: bigint): bigint {
  const candidate = (reference & ~0xffffffffn) | BigInt(xid >>> 0);
  if (candidate > reference + 0x80000000n) return candidate - 0x100000000n;
  if (candidate < reference - 0x80000000n) return candidate + 0x100000000n;
  return candidate;
}
