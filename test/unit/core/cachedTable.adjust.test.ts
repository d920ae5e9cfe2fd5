import { describe, expect, it } from 'vitest';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { UnsupportedIndexOperationError } from '../../../lib/core/errors.ts';
import type { PrimaryKeySpec } from '../../../lib/core/primaryKeyIndexes.ts';
import { PrimaryKeyIndexes } from '../../../lib/core/primaryKeyIndexes.ts';
import { PrimaryKeyRangeIndexes, type PrimaryKeyRangeSpec } from '../../../lib/core/primaryKeyRangeIndexes.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { settle } from './deferred.ts';
import { InstrumentedStorage } from './instrumentedStorage.ts';
import { UserCityIndexes } from './userCityIndexes.ts';
import { ALL_USERS, SOME_USERS, UsersDb, alice, bob, carol, readUsers, usersTable, type User } from './usersFixture.ts';

/** Records what each adjustment observed, in the order CachedTable reported it. */
class ObservedPrimaryKeyIndexes extends PrimaryKeyIndexes<User, number> {
  readonly observed: string[][] = [];

  constructor() {
    super((user) => user.id, ALL_USERS, SOME_USERS);
  }

  override prepareAdjustment(spec: PrimaryKeySpec<number>) {
    const adjustment = super.prepareAdjustment(spec);
    const log: string[] = [];
    this.observed.push(log);
    adjustment.observeExpired = (user: User) => log.push(`expired ${user.id} ${user.name}`);
    adjustment.observeLoaded = (user: User) => log.push(`loaded ${user.id} ${user.name}`);
    return adjustment;
  }
}

function observedTable(users: readonly User[]) {
  const db = new UsersDb(users);
  const indexes = new ObservedPrimaryKeyIndexes();
  const storage = new InstrumentedStorage<User>(new LocalStorageTable(indexes, { tableName: 'users' }));
  const table = new CachedTable(indexes, db.access, storage);
  return { db, indexes, storage, table };
}

describe('CachedTable.adjust', () => {
  it('expires the records no longer wanted and loads the new ones, changing what is covered', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    await expect(table.adjust('primary_key', 2, 3)).resolves.toEqual({ expired: 1, loaded: 1 });
    const queries = db.access.queryCount;
    await expect(readUsers(table.getRecords('primary_key', 2, 3))).resolves.toEqual([bob, carol]);
    expect(db.access.queryCount).toBe(queries);
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual(alice);
    expect(db.access.queryCount).toBe(queries + 1);
  });

  it('observes the loaded records on load and the expired and loaded ones on adjust', async () => {
    const { table, indexes } = observedTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    await table.adjust('primary_key', 2, 3);
    expect(indexes.observed).toEqual([['loaded 1 Alice', 'loaded 2 Bob'], ['expired 1 Alice', 'loaded 3 Carol']]);
  });

  it('stages the adjustment in scratch space and merges it once, publishing the new coverage', async () => {
    const { table, indexes, storage } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    await table.adjust('primary_key', 2, 3);
    expect(storage.events.slice(3)).toEqual(['scratch discard start', 'scratch discard end', 'scratch put start', 'scratch put end', 'scratch merge']);
    expect(storage.mergeUpdates).toEqual([{ coverage: indexes.coverage() }]);
    expect(indexes.coverage().primary_key).toHaveLength(2);
  });

  it('waits for the load before adjusting', async () => {
    const { table, db } = usersTable([alice, bob, carol]);
    const adjust = table.adjust('primary_key', 3);
    await settle();
    expect(db.access.queryCount).toBe(0);
    await table.load('primary_key', 1);
    await expect(adjust).resolves.toEqual({ expired: 1, loaded: 1 });
    await expect(readUsers(table.getRecords('primary_key', 3))).resolves.toEqual([carol]);
  });

  it('rejects an adjustment by an index that cannot be adjusted by, with TC_UNSUPPORTED_OPERATION', async () => {
    const db = new UsersDb([alice]);
    const indexes = new UserCityIndexes();
    const table = new CachedTable(indexes, db.access, new LocalStorageTable(indexes, { tableName: 'users' }));
    await table.load('primary_key');
    const adjust = table.adjust('city', 'Berlin');
    await expect(adjust).rejects.toBeInstanceOf(UnsupportedIndexOperationError);
    await expect(adjust).rejects.toMatchObject({ code: 'TC_UNSUPPORTED_OPERATION' });
  });

  it('refreshes invalid records before adjusting, and the adjustment observes what the refresh expired and loaded', async () => {
    const { table, indexes, db } = observedTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    db.set({ ...alice, name: 'Alice 2' });
    const spec = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([spec], [spec], { forceRefreshOnNextRead: false });
    await table.adjust('primary_key', 1, 2, 3);
    expect(indexes.observed[1]).toEqual(['expired 1 Alice', 'loaded 1 Alice 2', 'loaded 3 Carol']);
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1, 2]], [[1]], [[3]]]);
    const queries = db.access.queryCount;
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ ...alice, name: 'Alice 2' });
    expect(db.access.queryCount).toBe(queries);
  });

  it('runs a refresh requested during an adjustment after the adjustment has merged, one scratch session at a time', async () => {
    const { table, indexes, db, storage } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    const hold = db.holdNext(SOME_USERS, { afterRows: 0 });
    const adjust = table.adjust('primary_key', 1, 2, 3);
    await hold.reached;
    db.set({ ...bob, name: 'Bob 2' });
    const spec = indexes.createSpec('primary_key', 2);
    table.invalidateRecords([spec], [spec]);
    const refresh = table.refreshInvalid();
    const read = table.getFirstRecord('primary_key', 2);
    await settle();
    // Nothing of the refresh is staged while the adjustment holds scratch space.
    expect(storage.events.slice(3)).toEqual(['scratch put start']);
    hold.release();
    await Promise.all([adjust, refresh]);
    await expect(read).resolves.toEqual({ ...bob, name: 'Bob 2' });
    expect(storage.maxConcurrentScratchOps).toBe(1);
    expect(storage.events.slice(3)).toEqual([
      // the adjustment (nothing to expire: discard of nothing is skipped)
      'scratch put start',
      'scratch put end',
      'scratch merge',
      // then the refresh
      'scratch discard start',
      'scratch discard end',
      'scratch put start',
      'scratch put end',
      'scratch merge',
    ]);
  });

  it('runs adjustments one after another in the order they were requested', async () => {
    const { table, db, storage } = usersTable([alice, bob, carol]);
    await table.load('primary_key', 1);
    const hold = db.holdNext(SOME_USERS, { afterRows: 0 });
    const first = table.adjust('primary_key', 1, 2);
    await hold.reached;
    const second = table.adjust('primary_key', 3);
    await settle();
    expect(db.access.callsTo(SOME_USERS)).toHaveLength(2);
    hold.release();
    await expect(first).resolves.toEqual({ expired: 0, loaded: 1 });
    await expect(second).resolves.toEqual({ expired: 2, loaded: 1 });
    expect(storage.maxConcurrentScratchOps).toBe(1);
    expect(db.access.callsTo(SOME_USERS).map((call) => call.args)).toEqual([[[1]], [[2]], [[3]]]);
  });
});

describe('CachedTable reads during an adjustment', () => {
  const RANGE = 'users with ids in [$1, $2)';
  const ids = (ge: number, lt: number) => Array.from({ length: lt - ge }, (_, i) => ge + i);
  const named = (suffix: string) => (id: number): User => ({ id, name: `user ${id}${suffix}`, city: 'Berlin' });

  /** Users 0..14 in the database; [0, 10) cached, then every user renamed in the database only. */
  async function rangeTable() {
    const db = new UsersDb(ids(0, 15).map(named(''))).answerWith(RANGE, ([ge, lt]) => (user) => user.id >= (ge as number) && user.id < (lt as number));
    const indexes = new PrimaryKeyRangeIndexes<User>((user) => user.id, RANGE);
    const storage = new InstrumentedStorage<User>(new LocalStorageTable(indexes, { tableName: 'users' }));
    const table = new CachedTable(indexes, db.access, storage);
    await table.load('primary_key', { ge: 0, lt: 10 });
    for (const id of ids(0, 15)) db.set(named(' v2')(id));
    return { db, table, storage };
  }

  // Adjusting from [0, 10) to [5, 15): what each read returns before the merge (storage
  // where covered, else the database) and after it.
  const cases = [
    { ge: 5, lt: 10, before: ids(5, 10).map(named('')), after: ids(5, 10).map(named(' v2')) },
    { ge: 0, lt: 5, before: ids(0, 5).map(named('')), after: ids(0, 5).map(named(' v2')) },
    { ge: 0, lt: 10, before: ids(0, 10).map(named('')), after: ids(0, 10).map(named(' v2')) },
    { ge: 10, lt: 15, before: ids(10, 15).map(named(' v2')), after: ids(10, 15).map(named(' v2')) },
  ];

  type Read = { readonly when: string; readonly range: (typeof cases)[number]; readonly result: Promise<User[]> };

  function startReads(table: CachedTable<User, number, PrimaryKeyRangeSpec, [{ ge: number; lt: number }]>, when: string): Read[] {
    return cases.map((range) => ({ when, range, result: readUsers(table.getRecords('primary_key', { ge: range.ge, lt: range.lt })) }));
  }

  const same = (a: readonly User[], b: readonly User[]) => JSON.stringify(a) === JSON.stringify(b);

  it('sees the whole old state or the whole new state at every step, never a mix', async () => {
    const { db, table, storage } = await rangeTable();
    const loadSteps = db.holdNextAt(RANGE, [0, 1, 5, 10]);
    const merge = storage.holdNextMerge();
    const adjust = table.adjust('primary_key', { ge: 5, lt: 15 });
    const reads: Read[] = [];
    for (const [step, hold] of loadSteps.entries()) {
      await hold.reached;
      reads.push(...startReads(table, `after ${step} load steps`));
      hold.release();
    }
    await merge.reached;
    const duringMerge = startReads(table, 'during the merge');
    await settle();
    merge.release();
    await adjust;
    reads.push(...duringMerge, ...startReads(table, 'after the adjustment'));
    expect(reads).toHaveLength(cases.length * 6);
    for (const { when, range, result } of reads) {
      const records = await result;
      const state = same(records, range.before) ? 'old' : same(records, range.after) ? 'new' : 'mixed';
      expect({ when, range: `[${range.ge}, ${range.lt})`, state, records }).not.toMatchObject({ state: 'mixed' });
      if (when === 'during the merge' || when === 'after the adjustment') expect(records).toEqual(range.after);
    }
  });

  it('makes a read that arrives while the adjustment merges wait for the merge, then see the new state', async () => {
    const { table, storage } = await rangeTable();
    const merge = storage.holdNextMerge();
    const adjust = table.adjust('primary_key', { ge: 5, lt: 15 });
    await merge.reached;
    // The Indexes already describe the new range here; storage does not hold it yet.
    const read = readUsers(table.getRecords('primary_key', { ge: 10, lt: 15 }));
    let readDone = false;
    void read.then(() => (readDone = true));
    await settle();
    expect(readDone).toBe(false);
    merge.release();
    await adjust;
    await expect(read).resolves.toEqual(ids(10, 15).map(named(' v2')));
  });

  it('serves reads of covered records from the old state while the adjustment loads', async () => {
    const { db, table } = await rangeTable();
    const hold = db.holdNext(RANGE, { afterRows: 3 });
    const adjust = table.adjust('primary_key', { ge: 5, lt: 15 });
    await hold.reached;
    await expect(readUsers(table.getRecords('primary_key', { ge: 0, lt: 10 }))).resolves.toEqual(ids(0, 10).map(named('')));
    hold.release();
    await adjust;
  });

  it('leaves nothing of a failed adjustment staged, so the next merge publishes only its own changes', async () => {
    const { db, table } = await rangeTable();
    db.failNext(RANGE, new Error('connection lost'));
    await expect(table.adjust('primary_key', { ge: 5, lt: 15 })).rejects.toThrow('connection lost');
    // Still [0, 10): the failed adjustment's staged expiry of [0, 10) and its
    // partial load must not reach storage with the next merge.
    const five = table.indexes.createSpec('primary_key', { ge: 5, lt: 6 });
    table.invalidateRecords([five], [five]);
    await table.refreshInvalid();
    await expect(readUsers(table.getRecords('primary_key', { ge: 0, lt: 10 }))).resolves.toEqual([
      ...ids(0, 5).map(named('')),
      named(' v2')(5),
      ...ids(6, 10).map(named('')),
    ]);
  });

  it('can adjust again after a failed adjustment', async () => {
    const { db, table } = await rangeTable();
    db.failNext(RANGE, new Error('connection lost'));
    await expect(table.adjust('primary_key', { ge: 5, lt: 15 })).rejects.toThrow('connection lost');
    await expect(table.adjust('primary_key', { ge: 5, lt: 15 })).resolves.toEqual({ expired: 10, loaded: 10 });
    await expect(readUsers(table.getRecords('primary_key', { ge: 5, lt: 15 }))).resolves.toEqual(ids(5, 15).map(named(' v2')));
  });
});
