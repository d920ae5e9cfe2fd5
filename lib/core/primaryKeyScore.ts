import type { Score } from './interval.ts';
import type { PrimaryKey } from './storageTable.ts';

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK_53 = (1n << 53n) - 1n;

/**
 * A stable float64 score for a primary key, the same in every process and
 * every language (readers in other processes compute it too):
 *
 * - a number is its own score;
 * - a bigint is converted to the nearest float64 (keys beyond 2^53 may share a score);
 * - a string is its FNV-1a 64-bit hash over UTF-8, cut to 53 bits, so it is an exact integer.
 *
 * Distinct keys may share a score; reads recheck the key, so a collision costs
 * only a comparison.
 */
export function primaryKeyScore(key: PrimaryKey): Score {
  if (typeof key === 'number') return key;
  if (typeof key === 'bigint') return Number(key);
  let hash = FNV_OFFSET;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= BigInt(byte);
    hash = (hash * FNV_PRIME) & 0xffffffffffffffffn;
  }
  return Number(hash & MASK_53);
}
