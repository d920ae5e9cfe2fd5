import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { Interval, nextScoreAfter } from '../../../lib/core/interval.ts';

describe('nextScoreAfter', () => {
  it('returns the next representable float64 above the score', () => {
    expect(nextScoreAfter(1)).toBe(1 + Number.EPSILON);
    expect(nextScoreAfter(0)).toBe(Number.MIN_VALUE);
    expect(nextScoreAfter(-0)).toBe(Number.MIN_VALUE);
    expect(nextScoreAfter(-1)).toBe(-1 + Number.EPSILON / 2);
    expect(nextScoreAfter(2 ** 53)).toBe(2 ** 53 + 2);
  });

  it('steps from the extremes to the next value inward or to Infinity', () => {
    expect(nextScoreAfter(-Infinity)).toBe(-Number.MAX_VALUE);
    expect(nextScoreAfter(Number.MAX_VALUE)).toBe(Infinity);
    expect(nextScoreAfter(Infinity)).toBe(Infinity);
  });

  it('leaves no float64 between the score and its successor', () => {
    for (const score of [0.1, 123.456, -7.25, 1e300, -1e-300]) {
      const next = nextScoreAfter(score);
      expect(next).toBeGreaterThan(score);
      expect((score + next) / 2 === score || (score + next) / 2 === next).toBe(true);
    }
  });

  it('rejects NaN with TC_INVALID_ARGUMENT', () => {
    expect(() => nextScoreAfter(NaN)).toThrow(InvalidArgumentError);
  });
});

describe('Interval', () => {
  it('is half-open: contains its lower bound but not its upper bound', () => {
    const interval = new Interval(0, 10);
    expect(interval.contains(0)).toBe(true);
    expect(interval.contains(9.999)).toBe(true);
    expect(interval.contains(10)).toBe(false);
    expect(interval.contains(-0.001)).toBe(false);
  });

  it('holds no score when both bounds are equal', () => {
    const empty = new Interval(5, 5);
    expect(empty.isEmpty).toBe(true);
    expect(empty.contains(5)).toBe(false);
    expect(new Interval(5, 6).isEmpty).toBe(false);
  });

  it('rejects NaN bounds naming the bad bounds', () => {
    for (const [ge, lt] of [[NaN, 1], [0, NaN], [NaN, NaN]] as const) {
      const attempt = () => new Interval(ge, lt);
      expect(attempt).toThrow(InvalidArgumentError);
      expect(attempt).toThrow(/NaN/);
    }
  });

  it('rejects bounds out of order with TC_INVALID_ARGUMENT naming both bounds', () => {
    try {
      new Interval(3, 2);
      expect.unreachable('an out-of-order interval was accepted');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).code).toBe('TC_INVALID_ARGUMENT');
      expect((error as Error).message).toMatch(/ge=3.*lt=2/);
    }
  });

  it('rejects bounds that are not numbers', () => {
    expect(() => new Interval('1' as unknown as number, 2)).toThrow(InvalidArgumentError);
    expect(() => new Interval(1, 2n as unknown as number)).toThrow(InvalidArgumentError);
  });

  it('spans every finite score and -Infinity with everything()', () => {
    const everything = Interval.everything();
    expect(everything.contains(-Infinity)).toBe(true);
    expect(everything.contains(Number.MAX_VALUE)).toBe(true);
    expect(everything.contains(Infinity)).toBe(false);
  });

  it('builds the smallest interval containing a score with onlyContaining, using nextScoreAfter', () => {
    const only = Interval.onlyContaining(5);
    expect(only.ge).toBe(5);
    expect(only.lt).toBe(nextScoreAfter(5));
    expect(only.contains(5)).toBe(true);
    expect(only.contains(nextScoreAfter(5))).toBe(false);
    expect(Interval.onlyContaining(2 ** 60).contains(2 ** 60)).toBe(true);
  });

  it('intersects an interval exactly when they share a score', () => {
    const interval = new Interval(0, 10);
    expect(interval.intersects(new Interval(9, 20))).toBe(true);
    expect(interval.intersects(new Interval(-5, 1))).toBe(true);
    expect(interval.intersects(new Interval(2, 3))).toBe(true);
    expect(interval.intersects(new Interval(-5, 20))).toBe(true);
    expect(interval.intersects(new Interval(10, 20))).toBe(false);
    expect(interval.intersects(new Interval(-5, 0))).toBe(false);
  });

  it('never intersects an empty interval', () => {
    expect(new Interval(0, 10).intersects(new Interval(5, 5))).toBe(false);
    expect(new Interval(5, 5).intersects(new Interval(0, 10))).toBe(false);
  });

  it('covers an interval that lies within it, bounds included', () => {
    const interval = new Interval(0, 10);
    expect(interval.covers(new Interval(0, 10))).toBe(true);
    expect(interval.covers(new Interval(2, 3))).toBe(true);
    expect(interval.covers(new Interval(5, 10.5))).toBe(false);
    expect(interval.covers(new Interval(-1, 5))).toBe(false);
    expect(interval.covers(new Interval(10, 11))).toBe(false);
  });

  it('covers every empty interval, even one outside it', () => {
    expect(new Interval(0, 10).covers(new Interval(50, 50))).toBe(true);
    expect(new Interval(0, 0).covers(new Interval(3, 3))).toBe(true);
    expect(new Interval(0, 0).covers(new Interval(0, 1))).toBe(false);
  });
});
