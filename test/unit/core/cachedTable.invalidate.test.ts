import { describe, expect, it } from 'vitest';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { InvalidArgumentError, NotCoveredError, NotLoadedError } from '../../../lib/core/errors.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { settle } from './deferred.ts';
import { UserCityIndexes } from './userCityIndexes.ts';
import { SOME_USERS, USERS_IN_CITIES, UsersDb, alice, bob, carol, readUsers, usersTable, type User } from './usersFixture.ts';

function userCityTable(users: readonly User[] = [alice, bob, carol], options: { cityCoverageUnknown?: boolean } = {}) {
  const db = new UsersDb(users);
  const indexes = new UserCityIndexes(options);
  const table = new CachedTable(indexes, db.access, new LocalStorageTable(indexes, { tableName: 'users' }));
  return { db, indexes, table };
}

describe('CachedTable.invalidateRecords argument checks', () => {
  it('rejects an invalidation before the load with TC_NOT_LOADED', async () => {
    const { table, indexes } = usersTable();
    const spec = indexes.createSpec('primary_key', 1);
    expect(() => table.invalidateRecords([spec], [spec])).toThrow(NotLoadedError);
    expect(() => table.invalidateRecords([spec], [spec])).toThrow(/not loaded/);
  });

  it('rejects an invalidation while the load is still running with TC_NOT_LOADED', async () => {
    const { table, indexes, db } = usersTable();
    const hold = db.holdNext('all users');
    const load = table.load('primary_key', { all: true });
    await hold.reached;
    const spec = indexes.createSpec('primary_key', 1);
    expect(() => table.invalidateRecords([spec], [spec])).toThrow(NotLoadedError);
    hold.release();
    await load;
  });

  it('rejects an empty list of old or new specs with TC_INVALID_ARGUMENT', async () => {
    const { table, indexes } = usersTable();
    await table.load('primary_key', { all: true });
    const spec = indexes.createSpec('primary_key', 1);
    expect(() => table.invalidateRecords([], [spec])).toThrow(InvalidArgumentError);
    expect(() => table.invalidateRecords([], [spec])).toThrow(/at least one old spec/);
    expect(() => table.invalidateRecords([spec], [])).toThrow(/at least one new spec/);
  });

  it('rejects an index named twice in one list with TC_INVALID_ARGUMENT naming the index', async () => {
    const { table, indexes } = userCityTable();
    await table.load('primary_key');
    const one = indexes.createSpec('primary_key', 1);
    const two = indexes.createSpec('primary_key', 2);
    expect(() => table.invalidateRecords([one, two], [one])).toThrow(InvalidArgumentError);
    expect(() => table.invalidateRecords([one], [one, two])).toThrow(/"primary_key" is named more than once in the new specs/);
  });

  it('rejects an uncovered spec, old or new, with TC_NOT_COVERED', async () => {
    const { table, indexes } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    const covered = indexes.createSpec('primary_key', 1);
    const uncovered = indexes.createSpec('primary_key', 3);
    expect(() => table.invalidateRecords([uncovered], [covered])).toThrow(NotCoveredError);
    expect(() => table.invalidateRecords([covered], [uncovered])).toThrow(NotCoveredError);
    expect(() => table.invalidateRecords([covered], [uncovered])).toThrow(/primary keys 3.*does not cover/);
  });

  it('rejects a spec of an index that cannot check coverage with TC_NOT_COVERED', async () => {
    const { table, indexes } = userCityTable([alice], { cityCoverageUnknown: true });
    await table.load('primary_key');
    const pk = indexes.createSpec('primary_key', 1);
    const city = indexes.createSpec('city', 'Berlin');
    expect(() => table.invalidateRecords([pk, city], [pk, city])).toThrow(NotCoveredError);
    expect(() => table.invalidateRecords([pk, city], [pk, city])).toThrow(/index "city" does not support coverage checks/);
  });

  it('records nothing from a rejected invalidation', async () => {
    const { table, indexes, db } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    expect(() => table.invalidateRecords([indexes.createSpec('primary_key', 1)], [indexes.createSpec('primary_key', 3)])).toThrow();
    const queries = db.access.queryCount;
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 0, loaded: 0 });
    await table.getFirstRecord('primary_key', 1);
    expect(db.access.queryCount).toBe(queries);
  });
});

describe('CachedTable invalidation and refresh', () => {
  it('keeps serving the old record until it is invalidated, then refreshes it on the next read', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual(alice);
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'New Name' });
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1]]]);
  });

  it('refreshes only once for several reads of the refreshed records', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await table.getFirstRecord('primary_key', 1);
    await table.getFirstRecord('primary_key', 1);
    await readUsers(table.getRecords('primary_key', { all: true }));
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(1);
  });

  it('does not refresh for a read that meets no invalid record', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await expect(table.getFirstRecord('primary_key', 2)).resolves.toEqual(bob);
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(0);
  });

  it('removes a record deleted in the database when it is refreshed', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.rows.delete(2);
    const spec = indexes.createSpec('primary_key', 2);
    table.invalidateRecords([spec], [spec]);
    await expect(table.getFirstRecord('primary_key', 2)).rejects.toMatchObject({ code: 'TC_NOT_FOUND' });
    await expect(readUsers(table.getRecords('primary_key', { all: true }))).resolves.toEqual([alice]);
  });

  it('adds records inserted in the database after the load once they are invalidated and refreshed', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set(carol);
    await expect(table.getFirstRecord('primary_key', 3)).rejects.toMatchObject({ code: 'TC_NOT_FOUND' });
    const spec = indexes.createSpec('primary_key', 3);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 0, loaded: 1 });
    const queries = db.access.queryCount;
    await expect(table.getFirstRecord('primary_key', 3)).resolves.toEqual(carol);
    await expect(readUsers(table.getRecords('primary_key', { all: true }))).resolves.toEqual([alice, bob, carol]);
    expect(db.access.queryCount).toBe(queries);
  });

  it('keeps serving the old record with forceRefreshOnNextRead: false until refreshInvalid()', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual(alice);
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual(alice);
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(0);
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 1, loaded: 1 });
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'New Name' });
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(1);
  });

  it('does nothing on refreshInvalid() when no record is invalid', async () => {
    const { table, db, storage } = usersTable();
    await table.load('primary_key', { all: true });
    const queries = db.access.queryCount;
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 0, loaded: 0 });
    expect(db.access.queryCount).toBe(queries);
    expect(storage.mergeCount).toBe(0);
  });

  it('refreshes several invalidations in one merge', async () => {
    const { table, indexes, db, storage } = usersTable([alice, bob, carol]);
    await table.load('primary_key', { all: true });
    for (const id of [1, 3]) {
      db.set({ ...db.rows.get(id)!, name: `renamed ${id}` });
      const spec = indexes.createSpec('primary_key', id);
      table.invalidateRecords([spec], [spec]);
    }
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 2, loaded: 2 });
    expect(storage.mergeCount).toBe(1);
    const users = await readUsers(table.getRecords('primary_key', { all: true }));
    expect(users.map((user) => user.name)).toEqual(['renamed 1', 'Bob', 'renamed 3']);
  });

  it('stages a refresh in scratch space, so reads before its merge still see the old record', async () => {
    const { table, indexes, db, storage } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    const hold = db.holdNext(SOME_USERS, { afterRows: 1 });
    const refresh = table.refreshInvalid();
    await hold.reached;
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual(alice);
    hold.release();
    await refresh;
    expect(storage.events.slice(-5)).toEqual([
      'scratch discard start',
      'scratch discard end',
      'scratch put start',
      'scratch put end',
      'scratch merge',
    ]);
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'New Name' });
  });

  it('leaves the invalidations pending when a refresh fails, so the next read retries it', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    db.failNext(SOME_USERS, new Error('server closed the connection'));
    await expect(table.getFirstRecord('primary_key', 1)).rejects.toThrow('server closed the connection');
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'New Name' });
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(2);
  });

  it('leaves the invalidations pending when refreshInvalid() fails, and a later call completes them', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...bob, name: 'Robert' });
    const spec = indexes.createSpec('primary_key', 2);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    db.failNext(SOME_USERS, new Error('timeout'));
    await expect(table.refreshInvalid()).rejects.toThrow('timeout');
    await expect(table.getFirstRecord('primary_key', 2)).resolves.toEqual(bob);
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 1, loaded: 1 });
    await expect(table.getFirstRecord('primary_key', 2)).resolves.toEqual({ ...bob, name: 'Robert' });
  });

  it("starts a refresh's database read before its storage discard, and releases the read when the discard fails", async () => {
    const { table, indexes, db, storage } = usersTable();
    await table.load('primary_key', { all: true });
    let readReleased = false;
    db.access.answer(SOME_USERS, async function* () {
      try {
        yield { ...alice, name: 'New Name' };
      } finally {
        readReleased = true;
      }
    });
    storage.scratchDiscardRecords = () => {
      throw new Error('storage unreachable');
    };
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    await expect(table.refreshInvalid()).rejects.toThrow('storage unreachable');
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(1);
    expect(readReleased).toBe(true);
  });

  it('keeps an invalidation that arrives while a refresh reads the database, and refreshes it on the next read', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'Alice 2' });
    const one = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([one], [one]);
    const hold = db.holdNext(SOME_USERS);
    const refresh = table.refreshInvalid();
    await hold.reached;
    db.set({ ...bob, name: 'Bob 2' });
    const two = indexes.createSpec('primary_key', 2);
    table.invalidateRecords([two], [two]);
    hold.release();
    await expect(refresh).resolves.toEqual({ expired: 1, loaded: 1 });
    await expect(table.getFirstRecord('primary_key', 2)).resolves.toEqual({ ...bob, name: 'Bob 2' });
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1]], [[2]]]);
  });

  it('makes a read of a record whose refresh is already running wait for that refresh', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    const hold = db.holdNext(SOME_USERS);
    const refresh = table.refreshInvalid();
    await hold.reached;
    // Invalidated before this read started: it must not be served the old record.
    const read = table.getFirstRecord('primary_key', 1);
    let readDone = false;
    void read.then(() => (readDone = true), () => (readDone = true));
    await settle();
    expect(readDone).toBe(false);
    hold.release();
    await refresh;
    await expect(read).resolves.toEqual({ ...alice, name: 'New Name' });
  });

  it('makes refreshInvalid() wait for a refresh that is already running the invalidations', async () => {
    const { table, indexes, db } = usersTable();
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'New Name' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    const hold = db.holdNext(SOME_USERS);
    const first = table.refreshInvalid();
    await hold.reached;
    const second = table.refreshInvalid();
    let secondDone = false;
    void second.then(() => (secondDone = true));
    await settle();
    expect(secondDone).toBe(false);
    hold.release();
    await Promise.all([first, second]);
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'New Name' });
  });
});

describe('CachedTable invalidation across indexes', () => {
  it('makes an index left out of an invalidation dirty: its next read refreshes first', async () => {
    const { table, indexes, db } = userCityTable();
    await table.load('primary_key');
    db.set({ ...alice, city: 'Paris' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await expect(readUsers(table.getRecords('city', 'Paris'))).resolves.toEqual([{ ...alice, city: 'Paris' }, bob]);
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1]]]);
    expect(db.access.callsTo(USERS_IN_CITIES)).toHaveLength(0);
    await expect(readUsers(table.getRecords('city', 'Berlin'))).resolves.toEqual([]);
    expect(db.access.queryCount).toBe(2);
  });

  it('refreshes a dirty index for a read of any of its scores, even one no invalidation named', async () => {
    const { table, indexes, db } = userCityTable();
    await table.load('primary_key');
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await expect(readUsers(table.getRecords('city', 'Rome'))).resolves.toEqual([carol]);
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(1);
  });

  it('cleans a dirty index with the refresh', async () => {
    const { table, indexes, db } = userCityTable();
    await table.load('primary_key');
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec]);
    await table.refreshInvalid();
    const queries = db.access.queryCount;
    await readUsers(table.getRecords('city', 'Rome'));
    expect(db.access.queryCount).toBe(queries);
  });

  it('refreshes a read through a named index only when it meets an old or new score of the invalidation', async () => {
    const { table, indexes, db } = userCityTable();
    await table.load('primary_key');
    db.set({ ...alice, city: 'Paris' });
    const pk = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([pk, indexes.createSpec('city', 'Berlin')], [pk, indexes.createSpec('city', 'Paris')]);
    await expect(readUsers(table.getRecords('city', 'Rome'))).resolves.toEqual([carol]);
    await expect(readUsers(table.getRecords('primary_key', 2))).resolves.toEqual([bob]);
    expect(db.access.queryCount).toBe(1);
    await expect(readUsers(table.getRecords('city', 'Berlin'))).resolves.toEqual([]);
    expect(db.access.queryCount).toBe(2);
    await expect(readUsers(table.getRecords('city', 'Paris'))).resolves.toEqual([{ ...alice, city: 'Paris' }, bob]);
    expect(db.access.queryCount).toBe(2);
  });

  it('refreshes by deleting what the first old spec names and loading what the first new spec names', async () => {
    const { table, indexes, db } = userCityTable();
    await table.load('primary_key');
    db.set({ ...alice, city: 'Paris' });
    const pk = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([indexes.createSpec('city', 'Berlin'), pk], [indexes.createSpec('city', 'Paris'), pk]);
    await expect(table.refreshInvalid()).resolves.toEqual({ expired: 1, loaded: 2 });
    expect(db.access.calls.at(-1)).toEqual({ query: USERS_IN_CITIES, args: [['Paris']] });
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(0);
    await expect(readUsers(table.getRecords('city', 'Paris'))).resolves.toEqual([{ ...alice, city: 'Paris' }, bob]);
  });
});
