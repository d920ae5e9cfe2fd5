import { Interval } from '../core/interval.ts';
import type { Coverage } from '../core/storageTable.ts';
import { parseScore, scoreArgument } from './keyLayout.ts';
import { StorageFormatError } from './redisErrors.ts';

/**
 * The coverage a writer publishes in the metadata hash, and what readers
 * conclude from it. Part of the key layout contract (docs/redis-key-layout.md).
 */

/**
 * Coverage as stored in the `coverage` field: JSON mapping each index name to
 * a list of `[ge, lt]` pairs, each bound the text {@link scoreArgument} gives
 * (JSON has no Infinity), or `null` when the writer cannot describe coverage.
 */
export function encodeCoverage(coverage: Coverage | null): string {
  if (coverage === null) return 'null';
  const encoded: Record<string, [string, string][]> = {};
  for (const [indexName, intervals] of Object.entries(coverage)) {
    encoded[indexName] = intervals.map((interval) => [
      scoreArgument(interval.ge, () => `Coverage of index "${indexName}"`),
      scoreArgument(interval.lt, () => `Coverage of index "${indexName}"`),
    ]);
  }
  return JSON.stringify(encoded);
}

/**
 * The inverse of {@link encodeCoverage}.
 *
 * @throws {@link StorageFormatError} when the text is not coverage JSON.
 */
export function decodeCoverage(text: string): Coverage | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new StorageFormatError(`The published coverage is not JSON (${(error as Error).message}); reload the cache.`, { cause: error });
  }
  if (parsed === null) return null;
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StorageFormatError(`The published coverage is not an object of index names; got ${text.slice(0, 80)}. Reload the cache.`);
  }
  const coverage: Record<string, Interval[]> = {};
  for (const [indexName, pairs] of Object.entries(parsed as Record<string, unknown>)) {
    if (!Array.isArray(pairs) || !pairs.every((pair) => Array.isArray(pair) && pair.length === 2)) {
      throw new StorageFormatError(`The published coverage of index "${indexName}" is not a list of [ge, lt] pairs. Reload the cache.`);
    }
    coverage[indexName] = (pairs as [string, string][]).map(([ge, lt]) => new Interval(parseScore(String(ge)), parseScore(String(lt))));
  }
  return coverage;
}

/**
 * Whether the published coverage holds every score of every interval in
 * `indexName`. Coverage intervals may be pieces of a larger range
 * (`[0, 5)` and `[5, 10)` together cover `[2, 8)`). Without published
 * coverage (`null`) nothing counts as covered; an empty interval always is.
 */
export function coverageCovers(coverage: Coverage | null, indexName: string, intervals: readonly Interval[]): boolean {
  const pieces = [...(coverage?.[indexName] ?? [])].sort((a, b) => a.ge - b.ge);
  return intervals.every((interval) => interval.isEmpty || piecesCover(pieces, interval));
}

function piecesCover(sortedPieces: readonly Interval[], interval: Interval): boolean {
  let coveredUpTo = interval.ge;
  for (const piece of sortedPieces) {
    if (piece.ge > coveredUpTo) return false;
    if (piece.lt > coveredUpTo) coveredUpTo = piece.lt;
    if (coveredUpTo >= interval.lt) return true;
  }
  return false;
}
