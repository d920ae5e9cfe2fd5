import { describe, expect, it } from 'vitest';
import { NearCache, parseChangeAnnouncement, type ChangeAnnouncement, type InvalidationEvent } from '../../../lib/client/nearCache.ts';

const announce = (step: number, keys: string[] | 'all', atMicros = 0): ChangeAnnouncement => ({ step, keys, atMicros });

function activeCache(step: number, maxRecords = 100) {
  const cache = new NearCache<{ v: number }>({ maxRecords });
  cache.activate(step);
  return cache;
}

const fill = (cache: NearCache<{ v: number }>, step: number, entries: Record<string, number | undefined>, epoch = cache.epoch) =>
  cache.fill(
    epoch,
    step,
    Object.keys(entries),
    Object.values(entries).map((v) => (v === undefined ? undefined : { v })),
    Object.keys(entries).map(() => 10),
  );

const cached = (cache: NearCache<{ v: number }>, field: string) => {
  const entry = cache.lookup(field);
  return entry === undefined ? 'miss' : (entry.record?.v ?? 'absent');
};

describe('NearCache (the bookkeeping behind the reader near-cache)', () => {
  it('keeps a value read at the step the stream has reached, absent keys included', () => {
    const cache = activeCache(5);
    fill(cache, 5, { a: 1, b: undefined });
    expect(cached(cache, 'a')).toBe(1);
    expect(cached(cache, 'b')).toBe('absent');
  });

  it('drops the keys of an announced step, and everything for "all"', () => {
    const cache = activeCache(5);
    fill(cache, 5, { a: 1, b: 2, c: 3 });
    cache.apply(announce(6, ['a']), 0);
    expect([cached(cache, 'a'), cached(cache, 'b')]).toEqual(['miss', 2]);
    cache.apply(announce(7, 'all'), 0);
    expect([cached(cache, 'b'), cached(cache, 'c')]).toEqual(['miss', 'miss']);
  });

  it('does not keep a value read at an older step than the stream (it may predate a change already announced)', () => {
    const cache = activeCache(5);
    cache.apply(announce(6, ['a']), 0);
    fill(cache, 5, { a: 1 });
    expect(cached(cache, 'a')).toBe('miss');
  });

  it('keeps a value read ahead of the stream only once the stream reaches its step', () => {
    const cache = activeCache(5);
    fill(cache, 7, { a: 7 });
    expect(cached(cache, 'a')).toBe('miss');
    cache.apply(announce(6, ['a']), 0);
    expect(cached(cache, 'a')).toBe('miss');
    cache.apply(announce(7, ['a']), 0);
    expect(cached(cache, 'a')).toBe(7);
    // A waiting value the stream has passed is dropped, not kept late.
    fill(cache, 9, { b: 9 });
    cache.apply(announce(8, []), 0);
    cache.activate(10);
    expect(cached(cache, 'b')).toBe('miss');
  });

  it('empties itself and refuses fills from reads begun before a lost subscription', () => {
    const cache = activeCache(5);
    fill(cache, 5, { a: 1 });
    const epoch = cache.epoch;
    cache.deactivate();
    expect(cache.usable).toBe(false);
    expect(cached(cache, 'a')).toBe('miss');
    cache.activate(5);
    fill(cache, 5, { a: 1 }, epoch);
    expect(cached(cache, 'a')).toBe('miss');
    fill(cache, 5, { a: 1 });
    expect(cached(cache, 'a')).toBe(1);
  });

  it('answers nothing below a barrier floor until the stream reaches it, and keeps nothing read below it', () => {
    const cache = activeCache(5);
    fill(cache, 5, { a: 1 });
    cache.raiseFloor(6);
    expect(cache.usable).toBe(false);
    fill(cache, 5, { b: 1 });
    cache.apply(announce(6, []), 0);
    expect(cache.usable).toBe(true);
    expect(cached(cache, 'b')).toBe('miss');
  });

  it('takes a new table (steps starting again) from an "all" announcement', () => {
    const cache = activeCache(500);
    cache.apply(announce(1, 'all'), 0);
    fill(cache, 1, { a: 1 });
    expect(cached(cache, 'a')).toBe(1);
  });

  it('holds at most maxRecords, and at most maxBytes when given', () => {
    const cache = activeCache(1, 3);
    fill(cache, 1, { a: 1, b: 2, c: 3, d: 4 });
    expect(cache.stats().records).toBe(3);
    expect(cached(cache, 'a')).toBe('miss');
    const small = new NearCache<{ v: number }>({ maxRecords: 100, maxBytes: 200 });
    small.activate(1);
    fill(small, 1, { a: 1, b: 2, c: 3, d: 4 });
    // Each entry counts 10 encoded bytes + 1 key byte + 64.
    expect(small.stats()).toMatchObject({ records: 2, bytes: 150 });
  });

  it('measures staleness from the announcement time and reports it to a hook', () => {
    const events: InvalidationEvent[] = [];
    const cache = new NearCache<{ v: number }>({ maxRecords: 10, onInvalidation: (event) => events.push(event) });
    cache.activate(1);
    cache.apply(announce(2, ['a', 'b'], 1_000_000), 1_001_500);
    cache.apply(announce(3, 'all', 2_000_000), 2_000_250);
    expect(events).toEqual([
      { step: 2, keys: 2, stalenessMs: 1.5 },
      { step: 3, keys: 'all', stalenessMs: 0.25 },
    ]);
    expect(cache.stats().staleness).toMatchObject({ samples: 2, max: 1.5 });
  });

  it('freezes records it hands out, kept or not', () => {
    const cache = activeCache(5);
    const records = [{ v: 1 }];
    cache.fill(cache.epoch, 9, ['a'], records, [1]);
    expect(Object.isFrozen(records[0])).toBe(true);
  });

  it('refuses sizes that are not positive integers, naming the option', () => {
    expect(() => new NearCache({ maxRecords: 0 })).toThrow(/nearCache\.maxRecords must be a positive integer/);
    expect(() => new NearCache({ maxRecords: 1, maxBytes: 1.5 })).toThrow(/nearCache\.maxBytes/);
  });
});

describe('parseChangeAnnouncement', () => {
  it('reads the documented message format', () => {
    expect(parseChangeAnnouncement('{"v":1,"step":12,"at":"1764787200123456","keys":["1","a b"]}')).toEqual({
      step: 12,
      atMicros: 1764787200123456,
      keys: ['1', 'a b'],
    });
    expect(parseChangeAnnouncement('{"v":1,"step":13,"at":"1","all":true}')).toMatchObject({ keys: 'all' });
    expect(parseChangeAnnouncement('{"v":1,"step":14,"at":"1"}')).toMatchObject({ keys: [] });
  });

  it('returns null (treated as "everything changed") for anything else', () => {
    for (const message of ['', 'garbage', '{"v":2,"step":1}', '{"v":1,"step":"1"}', '{"v":1,"step":1,"keys":[1]}', 'null']) {
      expect(parseChangeAnnouncement(message)).toBeNull();
    }
    const cache = activeCache(5);
    fill(cache, 5, { a: 1 });
    cache.apply(parseChangeAnnouncement('garbage'), 0);
    expect(cached(cache, 'a')).toBe('miss');
  });
});
