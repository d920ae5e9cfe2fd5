import { describe, expect, it } from 'vitest';
import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { PrimaryKeyIndexes, type PrimaryKeySpec } from '../../../lib/core/primaryKeyIndexes.ts';
import { primaryKeyScore } from '../../../lib/core/primaryKeyScore.ts';
import type { PrimaryKey } from '../../../lib/core/storageTable.ts';

interface User {
  id: PrimaryKey;
  name: string;
}

const ALL = 'SELECT * FROM users';
const SOME = 'SELECT * FROM users WHERE id = ANY ($1)';

function makeIndexes(): PrimaryKeyIndexes<User> {
  return new PrimaryKeyIndexes<User>((user) => user.id, ALL, SOME);
}

function keysSpec(indexes: PrimaryKeyIndexes<User>, ...keys: PrimaryKey[]): PrimaryKeySpec<PrimaryKey> {
  return indexes.createSpec('primary_key', ...keys);
}

function allSpec(indexes: PrimaryKeyIndexes<User>): PrimaryKeySpec<PrimaryKey> {
  return indexes.createSpec('primary_key', { allPrimaryKeys: true });
}

function commit(indexes: PrimaryKeyIndexes<User>, spec: PrimaryKeySpec<PrimaryKey>): void {
  indexes.commitAdjustment(indexes.prepareAdjustment(spec));
}

const user = (id: PrimaryKey): User => ({ id, name: `user ${String(id)}` });

describe('PrimaryKeyIndexes', () => {
  describe('specs', () => {
    it('builds a spec of some keys or of all keys', () => {
      const indexes = makeIndexes();
      expect(keysSpec(indexes, 1, 'a', 3n)).toMatchObject({ indexName: 'primary_key', primaryKeys: [1, 'a', 3n], allPrimaryKeys: false });
      expect(allSpec(indexes)).toMatchObject({ primaryKeys: [], allPrimaryKeys: true });
    });

    it('names every record with { all: true }, the spelling every Indexes shares', () => {
      const indexes = makeIndexes();
      const spec = indexes.createSpec('primary_key', { all: true });
      expect(spec).toMatchObject({ primaryKeys: [], all: true });
      expect(String(spec)).toBe('all records');
      expect(indexes.dbRecordsSpec(spec)).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
      expect(keysSpec(indexes, 1).all).toBe(false);
    });

    it('still takes the deprecated { allPrimaryKeys: true }, as the same spec as { all: true }', () => {
      const indexes = makeIndexes();
      expect(allSpec(indexes)).toEqual(indexes.createSpec('primary_key', { all: true }));
      expect(allSpec(indexes).allPrimaryKeys).toBe(true);
      expect(indexes.createSpec('primary_key', { all: true }).allPrimaryKeys).toBe(true);
    });

    it('rejects an options object without all: true, naming what it got and what to pass', () => {
      const indexes = makeIndexes();
      expect(() => indexes.createSpec('primary_key', ...([{ all: false }] as unknown as [{ all: true }]))).toThrow(
        'Pass primary keys, or { all: true } alone; got an object with the keys all instead.',
      );
      expect(() => indexes.createSpec('primary_key', ...([{}] as unknown as [{ all: true }]))).toThrow('got an object with no keys instead');
    });

    it('rejects any index but primary_key, naming it', () => {
      expect(() => makeIndexes().createSpec('city', 1)).toThrow(InvalidArgumentError);
      expect(() => makeIndexes().createSpec('city', 1)).toThrow(/"city"/);
    });

    it('rejects keys that are not strings, numbers or bigints, and an options object without allPrimaryKeys', () => {
      const indexes = makeIndexes();
      expect(() => indexes.createSpec('primary_key', ...([true] as unknown as PrimaryKey[]))).toThrow(InvalidArgumentError);
      expect(() => indexes.createSpec('primary_key', ...([{ allPrimaryKeys: false }] as unknown as [{ allPrimaryKeys: true }]))).toThrow(
        InvalidArgumentError,
      );
      expect(() => indexes.createSpec('primary_key', ...([1, { allPrimaryKeys: true }] as unknown as PrimaryKey[]))).toThrow(
        InvalidArgumentError,
      );
    });

    it('scores a record by its primary key score, and only in primary_key', () => {
      const indexes = makeIndexes();
      expect(indexes.score('primary_key', user('abc'))).toBe(primaryKeyScore('abc'));
      expect(indexes.score('primary_key', user(12))).toBe(12);
      expect(() => indexes.score('name', user(1))).toThrow(InvalidArgumentError);
    });
  });

  describe('storage and database specs', () => {
    it('reads all records as one interval over everything, without recheck', () => {
      const spec = makeIndexes().storageRecordsSpec(allSpec(makeIndexes()));
      expect(spec.scoreIntervals).toEqual([Interval.everything()]);
      expect(spec.recheckPredicate).toBeUndefined();
    });

    it('reads some keys as one interval per distinct score, rechecking the key', () => {
      const indexes = makeIndexes();
      const spec = indexes.storageRecordsSpec(keysSpec(indexes, 3, 1, 3));
      expect(spec.scoreIntervals).toEqual([Interval.onlyContaining(1), Interval.onlyContaining(3)]);
      expect(spec.accepts(user(1))).toBe(true);
      expect(spec.accepts(user(2))).toBe(false);
    });

    it('names the distinct keys of a key spec, so storage may delete them unread; all keys and expiries name none', () => {
      const indexes = makeIndexes();
      expect(indexes.storageRecordsSpec(keysSpec(indexes, 3, 'a', 3, 2n ** 60n)).primaryKeys).toEqual([3, 'a', 2n ** 60n]);
      expect(indexes.storageRecordsSpec(allSpec(indexes)).primaryKeys).toBeUndefined();
      commit(indexes, keysSpec(indexes, 1, 2));
      expect(indexes.prepareAdjustment(keysSpec(indexes, 2)).expireSpec?.primaryKeys).toBeUndefined();
    });

    it('tells apart distinct keys that collide in score by the recheck', () => {
      const indexes = makeIndexes();
      const [a, b] = [2n ** 53n, 2n ** 53n + 1n];
      expect(primaryKeyScore(a)).toBe(primaryKeyScore(b));
      const spec = indexes.storageRecordsSpec(keysSpec(indexes, a));
      expect(spec.scoreIntervals).toEqual([Interval.onlyContaining(primaryKeyScore(a))]);
      expect(spec.accepts(user(a))).toBe(true);
      expect(spec.accepts(user(b))).toBe(false);
      // Both keys in one spec share their single interval, so the spec stays valid.
      expect(indexes.storageRecordsSpec(keysSpec(indexes, a, b)).scoreIntervals).toHaveLength(1);
    });

    it('queries all keys without parameters and some keys as one deduplicated array parameter', () => {
      const indexes = makeIndexes();
      expect(indexes.dbRecordsSpec(allSpec(indexes))).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
      expect(indexes.dbRecordsSpec(keysSpec(indexes, 1, 2, 1))).toEqual(new QueryArgsDbRecordsSpec(SOME, [[1, 2]]));
    });
  });

  describe('adjustments and coverage', () => {
    it('covers nothing before the first adjustment', () => {
      const indexes = makeIndexes();
      expect(indexes.covers(keysSpec(indexes, 1))).toBe(false);
      expect(indexes.covers(allSpec(indexes))).toBe(false);
      expect(indexes.coverage()).toEqual({ primary_key: [] });
    });

    it('loads everything and expires nothing when adjusting to all keys', () => {
      const indexes = makeIndexes();
      const adjustment = indexes.prepareAdjustment(allSpec(indexes));
      expect(adjustment.expireSpec).toBeNull();
      expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
    });

    it('does not change coverage until the adjustment is committed', () => {
      const indexes = makeIndexes();
      indexes.prepareAdjustment(allSpec(indexes));
      expect(indexes.covers(keysSpec(indexes, 1))).toBe(false);
    });

    it('covers every key, and all keys, once all keys are committed', () => {
      const indexes = makeIndexes();
      commit(indexes, allSpec(indexes));
      expect(indexes.covers(keysSpec(indexes, 1, 'anything', 9n))).toBe(true);
      expect(indexes.covers(allSpec(indexes))).toBe(true);
      expect(indexes.coverage()).toEqual({ primary_key: [Interval.everything()] });
    });

    it('needs neither expiry nor load to adjust from all keys to all keys', () => {
      const indexes = makeIndexes();
      commit(indexes, allSpec(indexes));
      const adjustment = indexes.prepareAdjustment(allSpec(indexes));
      expect(adjustment.expireSpec).toBeNull();
      expect(adjustment.loadSpec).toBeNull();
    });

    it('covers exactly the committed keys after adjusting to a key set', () => {
      const indexes = makeIndexes();
      commit(indexes, keysSpec(indexes, 1, 2));
      expect(indexes.covers(keysSpec(indexes, 1))).toBe(true);
      expect(indexes.covers(keysSpec(indexes, 1, 2))).toBe(true);
      expect(indexes.covers(keysSpec(indexes, 2, 3))).toBe(false);
      expect(indexes.covers(allSpec(indexes))).toBe(false);
      expect(indexes.coverage()).toEqual({ primary_key: [Interval.onlyContaining(1), Interval.onlyContaining(2)] });
    });

    it('loads only the added keys and expires only the dropped ones when changing a key set', () => {
      const indexes = makeIndexes();
      commit(indexes, keysSpec(indexes, 1, 2, 3));
      const adjustment = indexes.prepareAdjustment(keysSpec(indexes, 2, 3, 4, 5));
      expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(SOME, [[4, 5]]));
      expect(adjustment.expireSpec?.scoreIntervals).toEqual([Interval.onlyContaining(1)]);
      expect(adjustment.expireSpec?.accepts(user(1))).toBe(true);
      expect(adjustment.expireSpec?.accepts(user(2))).toBe(false);
      indexes.commitAdjustment(adjustment);
      expect(indexes.covers(keysSpec(indexes, 2, 3, 4, 5))).toBe(true);
      expect(indexes.covers(keysSpec(indexes, 1))).toBe(false);
    });

    it('needs neither expiry nor load to adjust to the same key set', () => {
      const indexes = makeIndexes();
      commit(indexes, keysSpec(indexes, 1, 2));
      const adjustment = indexes.prepareAdjustment(keysSpec(indexes, 2, 1));
      expect(adjustment.expireSpec).toBeNull();
      expect(adjustment.loadSpec).toBeNull();
    });

    it('expires every record except the wanted ones, loading nothing, when going from all keys to a key set', () => {
      const indexes = makeIndexes();
      commit(indexes, allSpec(indexes));
      const adjustment = indexes.prepareAdjustment(keysSpec(indexes, 1, 2));
      expect(adjustment.loadSpec).toBeNull();
      expect(adjustment.expireSpec?.scoreIntervals).toEqual([Interval.everything()]);
      expect([1, 2, 3, 'x'].map((id) => adjustment.expireSpec?.accepts(user(id)))).toEqual([false, false, true, true]);
      indexes.commitAdjustment(adjustment);
      expect(indexes.covers(keysSpec(indexes, 1, 2))).toBe(true);
      expect(indexes.covers(keysSpec(indexes, 3))).toBe(false);
    });

    it('loads everything and expires nothing when going from a key set to all keys', () => {
      const indexes = makeIndexes();
      commit(indexes, keysSpec(indexes, 1));
      const adjustment = indexes.prepareAdjustment(allSpec(indexes));
      expect(adjustment.expireSpec).toBeNull();
      expect(adjustment.loadSpec).toEqual(new QueryArgsDbRecordsSpec(ALL, []));
    });

    it('expires colliding keys apart: dropping one of two keys with the same score keeps the other', () => {
      const indexes = makeIndexes();
      const [a, b] = [2n ** 53n, 2n ** 53n + 1n];
      commit(indexes, keysSpec(indexes, a, b));
      const adjustment = indexes.prepareAdjustment(keysSpec(indexes, b));
      expect(adjustment.expireSpec?.accepts(user(a))).toBe(true);
      expect(adjustment.expireSpec?.accepts(user(b))).toBe(false);
    });
  });
});
