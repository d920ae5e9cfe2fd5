import { describe, expect, it } from 'vitest';
import { TableKeys, parseScore, primaryKeyField, scoreArgument } from '../../../lib/redis/keyLayout.ts';

describe('TableKeys', () => {
  it('puts every key of a table under one hash tag made of the prefix and the table name', () => {
    const keys = new TableKeys('users');
    expect([keys.meta, keys.lease, keys.owned, keys.records(3), keys.index(3, 'city_id')]).toEqual([
      '{tablecache:users}:meta',
      '{tablecache:users}:lease',
      '{tablecache:users}:owned',
      '{tablecache:users}:g3:r',
      '{tablecache:users}:g3:i:city_id',
    ]);
    expect([keys.stagedRecords(9), keys.stagedDeletes(9), keys.stagedIndex(9, 'city_id')]).toEqual([
      '{tablecache:users}:s9:r',
      '{tablecache:users}:s9:d',
      '{tablecache:users}:s9:i:city_id',
    ]);
    expect(new TableKeys('users', 'app1:').meta).toBe('{app1:users}:meta');
  });

  it('puts a table placed with a hash tag under {<prefix><tag>}, its name after the tag', () => {
    const keys = new TableKeys('users', 'p:', 'hot-a');
    expect([keys.meta, keys.records(3), keys.stagedIndex(9, 'a'), keys.changes]).toEqual(['{p:hot-a}users:meta', '{p:hot-a}users:g3:r', '{p:hot-a}users:s9:i:a', '{p:hot-a}users:changes']);
    // Two tables may share a tag (and so a slot); the names keep their keys apart, which a ":" in a name could not.
    expect(new TableKeys('orders', 'p:', 'hot-a').meta).toBe('{p:hot-a}orders:meta');
    expect(() => new TableKeys('a:b', 'p:', 'hot-a')).toThrow(/contains ":"/);
    expect(() => new TableKeys('users', 'p:', '')).toThrow(/must not be empty/);
    expect(() => new TableKeys('users', 'p:', 'x}')).toThrow(/hash tag "x\}" contains/);
  });

  it('lists every key of a generation and of a scratch session', () => {
    const keys = new TableKeys('t', 'p:');
    expect(keys.generationKeys(2, ['a', 'b'])).toEqual(['{p:t}:g2:r', '{p:t}:g2:i:a', '{p:t}:g2:i:b']);
    expect(keys.stagingKeys(5, ['a'])).toEqual(['{p:t}:s5:r', '{p:t}:s5:d', '{p:t}:s5:i:a']);
  });

  it('refuses names that would break the hash tag, and an empty table name', () => {
    expect(() => new TableKeys('a{b}')).toThrow(/table name "a\{b\}" contains "\{" or "\}"/);
    expect(() => new TableKeys('users', 'x}')).toThrow(/key prefix/);
    expect(() => new TableKeys('')).toThrow(/must not be empty/);
  });
});

describe('primaryKeyField', () => {
  it('writes integers, bigints and strings as their text, so 1, 1n and "1" are one key', () => {
    expect([primaryKeyField(1), primaryKeyField(1n), primaryKeyField('1')]).toEqual(['1', '1', '1']);
    expect(primaryKeyField(-42)).toBe('-42');
    expect(primaryKeyField(2n ** 70n)).toBe('1180591620717411303424');
    expect(primaryKeyField('user:7')).toBe('user:7');
  });

  it('writes other numbers as their shortest round-trip text, and -0 as 0', () => {
    expect(primaryKeyField(1.5)).toBe('1.5');
    expect(primaryKeyField(1e21)).toBe('1e+21');
    expect(primaryKeyField(-0)).toBe('0');
  });

  it('refuses keys that are not strings, bigints or finite numbers', () => {
    expect(() => primaryKeyField(Number.NaN)).toThrow(/finite number, got NaN/);
    expect(() => primaryKeyField(Infinity)).toThrow(/got Infinity/);
    expect(() => primaryKeyField(null as unknown as string)).toThrow(/got object/);
  });
});

describe('scores', () => {
  it('pass as the text that parses back to the same float64, with infinities as inf and -inf', () => {
    for (const score of [0, -1.5, 0.1, 1 / 3, Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_VALUE, 2 ** 53 + 2, Infinity, -Infinity]) {
      expect(parseScore(scoreArgument(score, () => 'x'))).toBe(score);
    }
    expect(scoreArgument(Infinity, () => 'x')).toBe('inf');
    expect(scoreArgument(-Infinity, () => 'x')).toBe('-inf');
    expect(parseScore('+inf')).toBe(Infinity);
  });

  it('refuses NaN and non-numbers, naming what had the score', () => {
    expect(() => scoreArgument(Number.NaN, () => 'Record "3" in index "age"')).toThrow(
      'Record "3" in index "age" has the score NaN; scores are float64 numbers (±Infinity allowed, NaN not).',
    );
    expect(() => scoreArgument(5n as unknown as number, () => 'Record "3"')).toThrow(/score 5 \(a bigint\)/);
  });
});
