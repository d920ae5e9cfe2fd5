import { describe, expect, expectTypeOf, it } from 'vitest';
import { AllIndexes } from '../../../lib/core/allIndexes.ts';
import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { PrimaryKeyIndexes, type PrimaryKeySpec } from '../../../lib/core/primaryKeyIndexes.ts';
import { PrimaryKeyRangeIndexes } from '../../../lib/core/primaryKeyRangeIndexes.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { FakeDbAccess } from '../../support/fakeDbAccess.ts';

interface User {
  user_id: number;
  name: string;
}

// Checked by `tsc --noEmit`: each @ts-expect-error fails the type check when
// the line below it compiles, so these pin what the API accepts and refuses.
describe('CachedTable argument types', () => {
  const db = new FakeDbAccess().answer('all', () => [{ user_id: 1, name: 'a' }]).answer('some', () => [{ user_id: 1, name: 'a' }]);

  it('takes the arguments of PrimaryKeyIndexes specs after the index name', async () => {
    const indexes = new PrimaryKeyIndexes((user: User) => user.user_id, 'all', 'some');
    const table = new CachedTable(indexes, db, new LocalStorageTable(indexes));
    expectTypeOf(table.load).toBeCallableWith('primary_key', { all: true });
    expectTypeOf(table.load).toBeCallableWith('primary_key', { allPrimaryKeys: true });
    expectTypeOf(table.getRecords).toBeCallableWith('primary_key', 1, 2);
    expectTypeOf(table.getFirstRecord).toBeCallableWith('primary_key', 1);
    expectTypeOf(table.getFirstRecord('primary_key', 1)).resolves.toEqualTypeOf<User>();
    expectTypeOf(indexes.createSpec('primary_key', 1)).toEqualTypeOf<PrimaryKeySpec<number>>();
    await table.load('primary_key', { allPrimaryKeys: true });
    await expect(table.getFirstRecord('primary_key', 1)).resolves.toEqual({ user_id: 1, name: 'a' });

    const refused = () => {
      // @ts-expect-error a range is not a PrimaryKeyIndexes argument
      table.getRecords('primary_key', { ge: 1 });
      // @ts-expect-error the primary keys of these indexes are numbers
      table.getRecords('primary_key', 'one');
      // @ts-expect-error all must be true
      void table.load('primary_key', { all: false });
      // @ts-expect-error allPrimaryKeys must be true
      void table.load('primary_key', { allPrimaryKeys: false });
      // @ts-expect-error a spec of other Indexes is not accepted
      table.getRecords(new PrimaryKeyRangeIndexes((user: User) => user.user_id, 'range').createSpec('primary_key', { ge: 0, lt: 1 }));
    };
    expect(refused).toBeTypeOf('function');
  });

  it('takes a range after the index name for PrimaryKeyRangeIndexes, and nothing else', () => {
    const indexes = new PrimaryKeyRangeIndexes((user: User) => user.user_id, 'range');
    const table = new CachedTable(indexes, db, new LocalStorageTable(indexes));
    expectTypeOf(table.adjust).toBeCallableWith('primary_key', { ge: 0, lt: 10 });
    const refused = () => {
      // @ts-expect-error keys are not a range
      table.getRecords('primary_key', 1, 2);
      // @ts-expect-error both bounds are needed
      table.getRecords('primary_key', { ge: 1 });
    };
    expect(refused).toBeTypeOf('function');
  });

  it('takes an optional recheck after the index name for AllIndexes', () => {
    const indexes = new AllIndexes((user: User) => user.user_id, 'all');
    const table = new CachedTable(indexes, db, new LocalStorageTable(indexes));
    expectTypeOf(table.getRecords).toBeCallableWith('all');
    expectTypeOf(table.getRecords).toBeCallableWith('all', { recheck: (user: User) => user.name === 'a' });
    expectTypeOf(table.load).toBeCallableWith('all', { all: true });
    const refused = () => {
      // @ts-expect-error all must be true
      void table.load('all', { all: false });
      // @ts-expect-error the recheck receives records of the table
      table.getRecords('all', { recheck: (user: { other: string }) => user.other === 'a' });
    };
    expect(refused).toBeTypeOf('function');
  });
});
