import { describe, expect, it } from 'vitest';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { AlreadyLoadedError, RecordNotFoundError, UnsupportedIndexOperationError } from '../../../lib/core/errors.ts';
import { PrimaryKeyIndexes } from '../../../lib/core/primaryKeyIndexes.ts';
import { primaryKeyScore } from '../../../lib/core/primaryKeyScore.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { FakeDbAccess } from '../../support/fakeDbAccess.ts';
import { settle } from './deferred.ts';
import { UserCityIndexes } from './userCityIndexes.ts';
import { ALL_USERS, SOME_USERS, UsersDb, alice, bob, carol, collect, readUsers, usersTable } from './usersFixture.ts';

describe('CachedTable loading', () => {
  it('loads the records of the spec straight into storage, not through scratch space', async () => {
    const { table, storage } = usersTable();
    await expect(table.load('primary_key', { all: true })).resolves.toEqual({ expired: 0, loaded: 2 });
    expect(storage.events).toEqual(['clear', 'put', 'markLoaded']);
    expect(table.isLoaded).toBe(true);
  });

  it('publishes the coverage the load established', async () => {
    const { db, indexes } = usersTable();
    const storage = new LocalStorageTable(indexes);
    const published = new CachedTable(indexes, db.access, storage);
    await published.load('primary_key', 1);
    expect(storage.published).toEqual({ loaded: true, coverage: indexes.coverage() });
  });

  it('makes reads started before the load wait until it has finished', async () => {
    const { table, db } = usersTable();
    const read = readUsers(table.getRecords('primary_key', 1, 2));
    let readDone = false;
    void read.then(() => (readDone = true));
    const hold = db.holdNext(ALL_USERS, { afterRows: 1 });
    const load = table.load('primary_key', { all: true });
    await hold.reached;
    await settle();
    expect(readDone).toBe(false);
    hold.release();
    await load;
    await expect(read).resolves.toEqual([alice, bob]);
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(0);
  });

  it('resolves loaded() once the load has finished', async () => {
    const { table } = usersTable();
    let loaded = false;
    void table.loaded().then(() => (loaded = true));
    await settle();
    expect(loaded).toBe(false);
    await table.load('primary_key', { all: true });
    await settle();
    expect(loaded).toBe(true);
  });

  it('rejects a second load with TC_ALREADY_LOADED', async () => {
    const { table } = usersTable();
    await table.load('primary_key', { all: true });
    const second = table.load('primary_key', { all: true });
    await expect(second).rejects.toBeInstanceOf(AlreadyLoadedError);
    await expect(second).rejects.toMatchObject({ code: 'TC_ALREADY_LOADED', message: expect.stringMatching(/already loaded.*adjust\(\)/) });
  });

  it('rejects a second load while the first is still running, without disturbing it', async () => {
    const { table, db } = usersTable();
    const hold = db.holdNext(ALL_USERS, { afterRows: 1 });
    const first = table.load('primary_key', { all: true });
    await hold.reached;
    await expect(table.load('primary_key', { all: true })).rejects.toMatchObject({ code: 'TC_ALREADY_LOADED' });
    hold.release();
    await expect(first).resolves.toEqual({ expired: 0, loaded: 2 });
    expect(db.access.callsTo(ALL_USERS)).toHaveLength(1);
  });

  it('can be retried after a failed load, and reads wait for the retry', async () => {
    const { table, db } = usersTable();
    db.failNext(ALL_USERS, new Error('connection reset'));
    const read = readUsers(table.getRecords('primary_key', { all: true }));
    await expect(table.load('primary_key', { all: true })).rejects.toThrow('connection reset');
    expect(table.isLoaded).toBe(false);
    await expect(table.load('primary_key', { all: true })).resolves.toEqual({ expired: 0, loaded: 2 });
    await expect(read).resolves.toEqual([alice, bob]);
  });

  it('clears what a failed load left in storage when it is retried', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    db.failNext(ALL_USERS, new Error('connection reset'));
    await expect(table.load('primary_key', { all: true })).rejects.toThrow();
    db.rows.delete(1);
    await table.load('primary_key', { all: true });
    await expect(readUsers(table.getRecords('primary_key', { all: true }))).resolves.toEqual([bob, carol]);
  });

  it('rejects loading by an index that cannot be adjusted by, naming the table and index', async () => {
    const db = new UsersDb([alice]);
    const indexes = new UserCityIndexes();
    const table = new CachedTable(indexes, db.access, new LocalStorageTable(indexes, { tableName: 'users' }));
    const load = table.load('city', 'Berlin');
    await expect(load).rejects.toBeInstanceOf(UnsupportedIndexOperationError);
    await expect(load).rejects.toThrow(/table "users".*index "city"/);
    await expect(table.load('primary_key')).resolves.toEqual({ expired: 0, loaded: 1 });
  });
});

describe('CachedTable reads', () => {
  it('serves covered reads from storage without querying the database', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    const queriesAfterLoad = db.access.queryCount;
    db.set({ ...alice, name: 'changed in the database only' });
    await expect(readUsers(table.getRecords('primary_key', 1, 2))).resolves.toEqual([alice, bob]);
    await expect(table.getFirstRecord('primary_key', 2)).resolves.toEqual(bob);
    expect(db.access.queryCount).toBe(queriesAfterLoad);
  });

  it('reads uncovered records from the database, once per read', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    await expect(readUsers(table.getRecords('primary_key', 3))).resolves.toEqual([carol]);
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1, 2]], [[3]]]);
  });

  it('reads the whole spec from the database when storage covers only part of it', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    db.set({ ...alice, name: 'Alice (database)' });
    await expect(readUsers(table.getRecords('primary_key', 1, 3))).resolves.toEqual([{ ...alice, name: 'Alice (database)' }, carol]);
    expect(db.access.callsTo(SOME_USERS).at(-1)?.args).toEqual([[1, 3]]);
  });

  it('accepts a spec object as well as an index name with arguments', async () => {
    const { table, indexes } = usersTable();
    await table.load(indexes.createSpec('primary_key', { all: true }));
    await expect(readUsers(table.getRecords(indexes.createSpec('primary_key', 2)))).resolves.toEqual([bob]);
  });

  it('throws TC_NOT_FOUND from getFirstRecord when nothing matches, without asking the database of a covered key', async () => {
    const { table, db } = usersTable();
    await table.load('primary_key', { all: true });
    const queriesAfterLoad = db.access.queryCount;
    const attempt = table.getFirstRecord('primary_key', 3);
    await expect(attempt).rejects.toBeInstanceOf(RecordNotFoundError);
    await expect(attempt).rejects.toMatchObject({ code: 'TC_NOT_FOUND', message: expect.stringMatching(/table "users".*primary keys 3/) });
    expect(db.access.queryCount).toBe(queriesAfterLoad);
  });

  it('throws TC_NOT_FOUND from getFirstRecord for an uncovered key the database lacks too', async () => {
    const { table, db } = usersTable();
    await table.load('primary_key', 1);
    await expect(table.getFirstRecord('primary_key', 99)).rejects.toMatchObject({ code: 'TC_NOT_FOUND' });
    expect(db.access.callsTo(SOME_USERS).at(-1)?.args).toEqual([[99]]);
  });

  it('rejects an index name the Indexes do not have with TC_INVALID_ARGUMENT', async () => {
    const { table } = usersTable();
    await table.load('primary_key', { all: true });
    await expect(table.getFirstRecord('nickname', 1)).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });
  });

  it('tells apart records whose primary keys collide in score', async () => {
    const [a, b] = [2n ** 53n, 2n ** 53n + 1n];
    expect(primaryKeyScore(a)).toBe(primaryKeyScore(b));
    const rows = new Map([a, b].map((id) => [id, { id, name: `row ${id}` }]));
    const db = new FakeDbAccess()
      .answer('all', () => [...rows.values()])
      .answer('some', ([ids]) => [...rows.values()].filter((row) => (ids as bigint[]).includes(row.id)));
    const indexes = new PrimaryKeyIndexes((row: { id: bigint; name: string }) => row.id, 'all', 'some');
    const table = new CachedTable(indexes, db, new LocalStorageTable(indexes));
    await table.load('primary_key', { all: true });
    await expect(collect(table.getRecords('primary_key', a))).resolves.toEqual([{ id: a, name: `row ${a}` }]);
    await expect(table.getFirstRecord('primary_key', b)).resolves.toEqual({ id: b, name: `row ${b}` });
    rows.set(a, { id: a, name: 'renamed' });
    const spec = indexes.createSpec('primary_key', a);
    table.invalidateRecords([spec], [spec]);
    await expect(table.getFirstRecord('primary_key', a)).resolves.toEqual({ id: a, name: 'renamed' });
    await expect(table.getFirstRecord('primary_key', b)).resolves.toEqual({ id: b, name: `row ${b}` });
    expect(db.calls.map((call) => call.args)).toEqual([[], [[a]]]);
  });
});
