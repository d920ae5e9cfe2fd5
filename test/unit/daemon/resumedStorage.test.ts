import { describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { KeyColumnIndexes, PRIMARY_KEY_INDEX } from '../../../lib/core/keyColumnIndexes.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { StorageTable } from '../../../lib/core/storageTable.ts';
import { LocalStorageTable } from '../../../lib/local/localStorageTable.ts';
import { ResumedStorage } from '../../../daemon/resumedStorage.ts';

type Row = Record<string, unknown>;

const indexes = new KeyColumnIndexes<Row>({ query: 'SELECT * FROM users', primaryKey: ['user_id'] });

async function ids(storage: StorageTable<Row>): Promise<unknown[]> {
  const found: unknown[] = [];
  for await (const record of storage.getRecords(new StorageRecordsSpec<Row>(PRIMARY_KEY_INDEX, [Interval.everything()]))) found.push(record['user_id']);
  return found.sort();
}

describe('ResumedStorage', () => {
  it("passes a refresh's deletion by primary key through to the storage, which deletes without reading", async () => {
    const local = new LocalStorageTable<Row>(indexes, { tableName: 'users' });
    await local.putRecords([{ user_id: 1 }, { user_id: 2 }]);
    await local.markLoaded({ coverage: {} });
    const resumed = new ResumedStorage(local);
    expect(resumed.scratchDiscardPrimaryKeys).toBeDefined();
    await resumed.scratchDiscardPrimaryKeys!([1]);
    await resumed.scratchMerge();
    expect(await ids(local)).toEqual([2]);
  });

  it('has no deletion by primary key over a storage without one (the refresh reads first)', () => {
    const local = new LocalStorageTable<Row>(indexes, { tableName: 'users' });
    const bare = Object.assign(Object.create(local) as StorageTable<Row>, { scratchDiscardPrimaryKeys: undefined });
    expect(new ResumedStorage(bare).scratchDiscardPrimaryKeys).toBeUndefined();
  });
});
