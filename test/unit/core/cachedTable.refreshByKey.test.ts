import { describe, expect, it } from 'vitest';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { PrimaryKeyIndexes } from '../../../lib/core/primaryKeyIndexes.ts';
import type { PrimaryKey } from '../../../lib/core/storageTable.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { deferred } from './deferred.ts';
import { InstrumentedStorage } from './instrumentedStorage.ts';
import { ALL_USERS, SOME_USERS, UsersDb, alice, bob, carol, readUsers, type User } from './usersFixture.ts';

/** An instrumented storage that can also delete by primary key, recording each call. */
class KeyDiscardingStorage extends InstrumentedStorage<User> {
  readonly discardedKeys: PrimaryKey[][] = [];
  /** Resolves at the first delete by key. */
  readonly discarding = deferred();

  constructor(private readonly local: LocalStorageTable<User, number>) {
    super(local);
  }

  async scratchDiscardPrimaryKeys(keys: readonly PrimaryKey[]): Promise<void> {
    this.discardedKeys.push([...keys]);
    this.discarding.resolve();
    await this.local.scratchDiscardPrimaryKeys(keys);
  }
}

function keyDiscardingTable(users: readonly User[]) {
  const db = new UsersDb(users);
  const indexes = new PrimaryKeyIndexes<User, number>((user) => user.id, ALL_USERS, SOME_USERS);
  const storage = new KeyDiscardingStorage(new LocalStorageTable(indexes, { tableName: 'users' }));
  const table = new CachedTable(indexes, db.access, storage);
  return { db, indexes, storage, table };
}

describe('CachedTable refresh of a primary-key spec', () => {
  // The deadline fails the test quickly when the delete waits for the held database read.
  it('deletes the keys unread while the database read is under way, counting every key as expired', { timeout: 5_000 }, async () => {
    const { db, indexes, storage, table } = keyDiscardingTable([alice, bob, carol]);
    await table.load('primary_key', { all: true });
    db.set({ ...alice, name: 'Alicia' });
    db.rows.delete(bob.id);
    table.invalidateRecords([indexes.createSpec('primary_key', 1, 2, 4)], [indexes.createSpec('primary_key', 1, 2, 4)]);
    const read = db.holdNext(SOME_USERS);
    const refresh = table.refreshInvalid();
    await read.reached;
    await storage.discarding.promise;
    read.release();
    await expect(refresh).resolves.toEqual({ expired: 3, loaded: 1 });
    expect(storage.discardedKeys).toEqual([[1, 2, 4]]);
    expect(storage.events).not.toContain('scratch discard start');
    expect(await readUsers(table.getRecords('primary_key', { all: true }))).toEqual([{ ...alice, name: 'Alicia' }, carol]);
  });

  it('still reads the records an adjustment refreshes, since the adjustment must see each expired one', async () => {
    const { db, indexes, storage, table } = keyDiscardingTable([alice, bob, carol]);
    await table.load('primary_key', 1, 2);
    db.set({ ...alice, name: 'Alicia' });
    table.invalidateRecords([indexes.createSpec('primary_key', 1)], [indexes.createSpec('primary_key', 1)]);
    await expect(table.adjust('primary_key', 1, 2, 3)).resolves.toEqual({ expired: 0, loaded: 1 });
    expect(storage.discardedKeys).toEqual([]);
    // The adjustment expires nothing (1 and 2 stay cached): this discard is the refresh's.
    expect(storage.events.filter((event) => event === 'scratch discard start')).toHaveLength(1);
    expect(await readUsers(table.getRecords('primary_key', 1, 2, 3))).toEqual([{ ...alice, name: 'Alicia' }, bob, carol]);
  });
});
