import { describe, expect, it } from 'vitest';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { InvalidArgumentError, UnsupportedIndexOperationError } from '../../../lib/core/errors.ts';
import { Interval, nextScoreAfter } from '../../../lib/core/interval.ts';
import {
  canonicalKey,
  canonicalKeyValue,
  KeyColumnIndexes,
  keyColumnScore,
  NULL_KEY_SCORE,
} from '../../../lib/core/keyColumnIndexes.ts';
import { primaryKeyScore } from '../../../lib/core/primaryKeyScore.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { FakeDbAccess } from '../../support/fakeDbAccess.ts';

type Row = Record<string, unknown>;

const QUERY = 'SELECT * FROM users JOIN cities USING (city_id)';

function usersIndexes(): KeyColumnIndexes<Row> {
  return new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['user_id'], lookups: [['city_id'], ['user_id']] });
}

describe('canonicalKeyValue', () => {
  it('gives a payload int8 string, a pg bigint and a JSON number the same key', () => {
    expect(canonicalKeyValue('12')).toBe(12);
    expect(canonicalKeyValue(12n)).toBe(12);
    expect(canonicalKeyValue(12)).toBe(12);
  });

  it('keeps integers beyond 2^53 exact as bigint, from a string or a bigint', () => {
    expect(canonicalKeyValue('9007199254740993')).toBe(9007199254740993n);
    expect(canonicalKeyValue(9007199254740993n)).toBe(9007199254740993n);
  });

  it('leaves strings that are not canonical integers alone, so "012" and "12" stay distinct', () => {
    expect(canonicalKeyValue('012')).toBe('012');
    expect(canonicalKeyValue('-0')).toBe('-0');
    expect(canonicalKeyValue('1.50')).toBe('1.50');
    expect(canonicalKeyValue('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  });

  it('maps NULL to null, booleans to text and -0 to 0', () => {
    expect(canonicalKeyValue(null)).toBeNull();
    expect(canonicalKeyValue(undefined)).toBeNull();
    expect(canonicalKeyValue(true)).toBe('true');
    expect(Object.is(canonicalKeyValue(-0), 0)).toBe(true);
  });

  it('refuses Dates, objects and non-finite numbers with a hint to cast to text', () => {
    expect(() => canonicalKeyValue(new Date())).toThrow(InvalidArgumentError);
    expect(() => canonicalKeyValue(new Date())).toThrow(/a Date\. Cast/);
    expect(() => canonicalKeyValue({ a: 1 })).toThrow(InvalidArgumentError);
    expect(() => canonicalKeyValue(Number.NaN)).toThrow(/finite/);
  });
});

describe('canonicalKey', () => {
  it('encodes a composite key as the JSON array of canonical texts', () => {
    expect(canonicalKey([12n, 'a'])).toBe('["12","a"]');
    expect(canonicalKey(['12', 'a'])).toBe(canonicalKey([12, 'a']));
  });

  it('is null when any part is NULL', () => {
    expect(canonicalKey([1, null])).toBeNull();
  });
});

describe('KeyColumnIndexes', () => {
  it('has primary_key and one index per lookup, a lookup equal to the primary key being primary_key itself', () => {
    expect(usersIndexes().indexNames).toEqual(['primary_key', 'city_id']);
    const composite = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['a', 'b'], lookups: [['c', 'd']] });
    expect(composite.indexNames).toEqual(['primary_key', 'c,d']);
    expect(composite.indexNameFor(['a', 'b'])).toBe('primary_key');
  });

  it('refuses two lookups whose names collide, and an unknown index', () => {
    expect(() => new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['id'], lookups: [['a,b'], ['a', 'b']] })).toThrow(InvalidArgumentError);
    expect(() => usersIndexes().createSpec('country', 1)).toThrow(/no index "country".*primary_key, city_id/);
  });

  it('scores a record by its canonical key, so the payload key "12" finds the record with key 12n', () => {
    const indexes = usersIndexes();
    const record: Row = { user_id: 12n, city_id: 5, name: 'Ann' };
    const spec = indexes.createSpec('primary_key', '12');
    const storageSpec = indexes.storageRecordsSpec(spec);
    expect(indexes.primaryKey(record)).toBe(12);
    expect(storageSpec.scoreIntervals.some((interval) => interval.contains(indexes.score('primary_key', record)))).toBe(true);
    expect(storageSpec.accepts(record)).toBe(true);
    expect(storageSpec.accepts({ ...record, user_id: 13n })).toBe(false);
  });

  it('gives a NULL lookup value the fixed NULL score, and no spec ever matches it', () => {
    const indexes = usersIndexes();
    const record: Row = { user_id: 1, city_id: null };
    expect(indexes.score('city_id', record)).toBe(NULL_KEY_SCORE);
    const spec = indexes.createSpec('city_id', null, 5);
    expect([...spec.keys.keys()]).toEqual([5]);
    expect(indexes.storageRecordsSpec(spec).accepts(record)).toBe(false);
  });

  it('dedupes keys given in different forms, one point interval per distinct score', () => {
    const indexes = usersIndexes();
    const spec = indexes.createSpec('city_id', 5, '5', 5n, 7);
    expect([...spec.keys.keys()]).toEqual([5, 7]);
    expect(indexes.storageRecordsSpec(spec).scoreIntervals).toEqual([Interval.onlyContaining(5), Interval.onlyContaining(7)]);
  });

  it('reads a run of consecutive integer keys as one interval, rechecking each record', () => {
    const indexes = usersIndexes();
    const storage = indexes.storageRecordsSpec(indexes.createSpec('primary_key', 3, 1, 2, 4, 10, 20, 21, 21.5));
    expect(storage.scoreIntervals).toEqual([new Interval(1, 5), Interval.onlyContaining(10), new Interval(20, nextScoreAfter(21)), Interval.onlyContaining(21.5)]);
    expect(storage.accepts({ user_id: 2, city_id: 1 })).toBe(true);
    expect(storage.accepts({ user_id: 1.5, city_id: 1 })).toBe(false);
  });

  it('reads a spec from the database by wrapping the query with one = ANY per column and quoted identifiers', () => {
    const indexes = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['id'], lookups: [['we"ird']] });
    const db = indexes.dbRecordsSpec(indexes.createSpec('we"ird', 5, 9007199254740993n, 'x'));
    expect(db.query).toBe(`SELECT * FROM (${QUERY}) AS "cached" WHERE "cached"."we""ird" = ANY($1)`);
    expect(db.args).toEqual([['5', '9007199254740993', 'x']]);
  });

  it('reads a composite spec with one distinct value array per column', () => {
    const indexes = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['order_id', 'line'] });
    const db = indexes.dbRecordsSpec(indexes.createSpec('primary_key', [1, 1], [1, 2], [2, 1]));
    expect(db.query).toContain('"cached"."order_id" = ANY($1) AND "cached"."line" = ANY($2)');
    expect(db.args).toEqual([
      ['1', '2'],
      ['1', '2'],
    ]);
  });

  it('rechecks composite keys exactly, though the database read may return more', () => {
    const indexes = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['order_id', 'line'] });
    const storage = indexes.storageRecordsSpec(indexes.createSpec('primary_key', [1, 1], [2, 2]));
    expect(storage.accepts({ order_id: 1n, line: '1' })).toBe(true);
    expect(storage.accepts({ order_id: 1, line: 2 })).toBe(false);
    expect(indexes.score('primary_key', { order_id: 1, line: 1 })).toBe(primaryKeyScore('["1","1"]'));
  });

  it('names the canonical primary keys of a primary-key spec, so storage may delete them unread; other specs name none', () => {
    const indexes = usersIndexes();
    const byKey = indexes.storageRecordsSpec(indexes.createSpec('primary_key', '12', 12n, 7, null));
    expect(byKey.primaryKeys).toEqual([12, 7]);
    expect(byKey.primaryKeys).toContain(indexes.primaryKey({ user_id: 12n, city_id: 1 }));
    expect(indexes.storageRecordsSpec(indexes.keySpec('primary_key', [['7']])).primaryKeys).toEqual([7]);
    expect(indexes.storageRecordsSpec(indexes.createSpec('primary_key', null)).primaryKeys).toEqual([]);
    expect(indexes.storageRecordsSpec(indexes.createSpec('city_id', 5)).primaryKeys).toBeUndefined();
    expect(indexes.storageRecordsSpec(indexes.createSpec('primary_key', { all: true })).primaryKeys).toBeUndefined();
    const orders = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['order_id', 'line'], lookups: [['order_id']] });
    expect(orders.storageRecordsSpec(orders.createSpec('primary_key', [1n, '2'])).primaryKeys).toEqual([orders.primaryKey({ order_id: 1, line: 2 })]);
    expect(orders.storageRecordsSpec(orders.createSpec('order_id', 1)).primaryKeys).toBeUndefined();
  });

  it('refuses keys of the wrong arity, naming the columns', () => {
    const indexes = new KeyColumnIndexes<Row>({ query: QUERY, primaryKey: ['order_id', 'line'] });
    expect(() => indexes.createSpec('primary_key', 1)).toThrow(/2 columns \(order_id, line\)/);
    expect(() => usersIndexes().createSpec('primary_key', [1])).toThrow(InvalidArgumentError);
  });

  it('names the missing column when the query does not select a key column', () => {
    expect(() => usersIndexes().score('city_id', { user_id: 1 })).toThrow(/no column "city_id"/);
  });

  it('loads only the whole query and covers everything', () => {
    const indexes = usersIndexes();
    const all = indexes.createSpec('primary_key', { all: true });
    expect(indexes.prepareAdjustment(all).loadSpec?.query).toBe(QUERY);
    expect(() => indexes.prepareAdjustment(indexes.createSpec('primary_key', 1))).toThrow(UnsupportedIndexOperationError);
    expect(indexes.covers(indexes.createSpec('city_id', 3))).toBe(true);
    expect(indexes.coverage()).toEqual({ primary_key: [Interval.everything()], city_id: [Interval.everything()] });
    expect(keyColumnScore(null)).toBe(NULL_KEY_SCORE);
  });

  it('refreshes the old and the new members of a lookup value through a CachedTable', async () => {
    const indexes = usersIndexes();
    const rows: Row[] = [
      { user_id: 1n, city_id: 5, name: 'a' },
      { user_id: 2n, city_id: 5, name: 'b' },
      { user_id: 3n, city_id: 6, name: 'c' },
    ];
    const db = new FakeDbAccess()
      .answer(QUERY, () => rows)
      .answer(indexes.dbRecordsSpec(indexes.createSpec('city_id', 5)).query, ([cities]) => {
        const wanted = new Set((cities as string[]).map(Number));
        return rows.filter((row) => wanted.has(Number(row['city_id'])));
      });
    const table = new CachedTable(indexes, db, new LocalStorageTable<Row>(indexes));
    await table.load('primary_key', { all: true });
    // User 2 moves to city 6 and city 5 is renamed: both city 5's old and new members are refreshed.
    rows[1] = { user_id: 2n, city_id: 6, name: 'b' };
    rows[0] = { user_id: 1n, city_id: 5, name: 'a2' };
    const spec = indexes.createSpec('city_id', '5');
    table.invalidateRecords([spec], [spec]);
    await table.refreshInvalid();
    const inCity5 = [];
    for await (const record of table.getRecords('city_id', 5)) inCity5.push(record);
    expect(inCity5).toEqual([{ user_id: 1n, city_id: 5, name: 'a2' }]);
    expect(await table.getFirstRecord('primary_key', 1)).toEqual({ user_id: 1n, city_id: 5, name: 'a2' });
  });
});
