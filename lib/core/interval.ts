import { InvalidArgumentError } from './errors.ts';

/** A score: a float64. Redis sorted-set scores are float64 too, so nothing is lost between storages. */
export type Score = number;

const scratchFloat = new Float64Array(1);
const scratchBits = new BigInt64Array(scratchFloat.buffer);

/**
 * The smallest float64 greater than `x` (C's `nextafter(x, +inf)`).
 *
 * @throws {@link InvalidArgumentError} when `x` is NaN.
 */
export function nextScoreAfter(x: Score): Score {
  if (Number.isNaN(x)) throw new InvalidArgumentError('Cannot take the next score after NaN.');
  if (x === Infinity) return Infinity;
  if (x === 0) return Number.MIN_VALUE;
  scratchFloat[0] = x;
  scratchBits[0] = x > 0 ? scratchBits[0]! + 1n : scratchBits[0]! - 1n;
  return scratchFloat[0];
}

/**
 * A half-open interval of scores, `[ge, lt)`: closed below, open above.
 *
 * @example
 * ```ts
 * new Interval(0, 10).contains(9.5); // true
 * Interval.onlyContaining(5);        // [5, 5.000000000000001)
 * ```
 */
export class Interval {
  /**
   * @throws {@link InvalidArgumentError} when a bound is NaN or `ge > lt`.
   */
  constructor(
    readonly ge: Score,
    readonly lt: Score,
  ) {
    if (Number.isNaN(ge) || Number.isNaN(lt) || typeof ge !== 'number' || typeof lt !== 'number') {
      throw new InvalidArgumentError(`Interval bounds must be numbers, got [${String(ge)}, ${String(lt)}).`);
    }
    if (ge > lt) {
      throw new InvalidArgumentError(`Interval bounds are not in order: ge=${ge} is greater than lt=${lt}.`);
    }
  }

  /** The interval from -Infinity to +Infinity. */
  static everything(): Interval {
    return new Interval(-Infinity, Infinity);
  }

  /** The smallest interval that contains `score`. */
  static onlyContaining(score: Score): Interval {
    return new Interval(score, nextScoreAfter(score));
  }

  /** Whether `score` lies in `[ge, lt)`. */
  contains(score: Score): boolean {
    return this.ge <= score && score < this.lt;
  }

  /** Whether the two intervals share any score. */
  intersects(other: Interval): boolean {
    return !this.isEmpty && !other.isEmpty && this.lt > other.ge && this.ge < other.lt;
  }

  /** Whether every score of `other` lies in this interval (an empty `other` is always covered). */
  covers(other: Interval): boolean {
    return other.ge === other.lt || (this.ge <= other.ge && other.lt <= this.lt);
  }

  /** Whether the interval holds no score at all. */
  get isEmpty(): boolean {
    return this.ge === this.lt;
  }

  toString(): string {
    return `[${this.ge}, ${this.lt})`;
  }
}
