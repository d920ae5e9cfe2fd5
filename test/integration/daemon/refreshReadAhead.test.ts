import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyColumnIndexes, PRIMARY_KEY_INDEX } from '../../../lib/core/keyColumnIndexes.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { silentLogger } from '../../../lib/core/logger.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import { PostgresAccess } from '../../../lib/postgres/postgresAccess.ts';
import { TableChanges } from '../../../daemon/changeBatch.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { LocalDaemonStorage } from '../../../daemon/localDaemonStorage.ts';
import { RefreshDbAccess } from '../../../daemon/refreshDbAccess.ts';
import type { StepSnapshot } from '../../../daemon/stepSnapshot.ts';
import { TableSync } from '../../../daemon/tableSync.ts';
import { WriterLeaseGroup } from '../../../daemon/writerLeaseGroup.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';

/**
 * A step reads ahead, in its snapshot S, the records of the changes it
 * already holds while its cut is proven; its refresh must publish exactly
 * S's records all the same: those read ahead, those of keys that arrived
 * later (read in S too), and the error of a read ahead that failed.
 */

const QUERY = 'SELECT id, 100 / v AS q FROM items';

let db: TestDatabase;
let storage: LocalDaemonStorage;
let sync: TableSync;
let session: pg.PoolClient;
/** Key reads (`readKeys`: a read ahead, or a refresh's own query) since the test began. */
let keyReads = 0;

beforeAll(async () => {
  db = await createTestDatabase('refresh_read_ahead');
});

afterAll(async () => {
  await db.drop();
});

beforeEach(async () => {
  await db.pool.query('DROP TABLE IF EXISTS items; CREATE TABLE items (id integer PRIMARY KEY, v integer NOT NULL); INSERT INTO items SELECT i, 1 FROM generate_series(1, 5) i');
  storage = new LocalDaemonStorage();
  const access = new RefreshDbAccess(new PostgresAccess({ pool: db.pool }), db.pool);
  const readKeys = access.readKeys.bind(access);
  access.readKeys = (...args) => {
    keyReads++;
    return readKeys(...args);
  };
  sync = await TableSync.open({
    name: 'items',
    indexes: new KeyColumnIndexes({ query: QUERY, primaryKey: ['id'] }),
    sources: [],
    db: access,
    pool: db.pool,
    storage,
    logger: silentLogger,
    events: new EventEmitter<DaemonEvents>(),
    standby: false,
    onLeaseLost: () => {},
    leases: new WriterLeaseGroup({ logger: silentLogger, requestReload: () => {} }),
  });
  session = await db.pool.connect();
  await sync.reload(['test'], snapshotOf(null));
  keyReads = 0;
});

afterEach(async () => {
  await session.query('ROLLBACK');
  session.release();
  await sync.close();
});

/** A step's snapshot in `client`'s open transaction (`null`: reads take their own). */
function snapshotOf(client: pg.ClientBase | null): StepSnapshot {
  return { isVisible: () => true, session: client, text: '', tickMs: 0, ticks: 0, provenBy: 'tick', limitStatements: async () => {}, close: async () => {} };
}

/** Opens S in `session`: a REPEATABLE READ transaction whose first statement fixes the snapshot. */
async function openSnapshot(): Promise<StepSnapshot> {
  await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await session.query('SELECT pg_current_snapshot()');
  return snapshotOf(session);
}

function changesOf(...ids: number[]): TableChanges {
  const changes = new TableChanges();
  for (const id of ids) changes.addKey(PRIMARY_KEY_INDEX, id, [id]);
  return changes;
}

/** What readers of the table see now: id → q. */
async function published(): Promise<Map<number, number>> {
  const records = new Map<number, number>();
  for await (const record of storage.table('items')!.getRecords(new StorageRecordsSpec(PRIMARY_KEY_INDEX, [Interval.everything()]))) {
    records.set(Number(record['id']), Number(record['q']));
  }
  return records;
}

describe('a refresh read ahead in its snapshot', () => {
  it('publishes the records read ahead in S, not those committed after S', async () => {
    const snapshot = await openSnapshot();
    await db.pool.query('UPDATE items SET v = 2 WHERE id IN (1, 2)');
    const readAhead = sync.readAhead(changesOf(1, 2), session);
    expect(readAhead).not.toBeNull();
    const counts = await sync.refresh(changesOf(1, 2), snapshot, readAhead);
    expect(counts).toMatchObject({ keys: 2, readAheadKeys: 2, loaded: 2 });
    // The refresh read nothing itself: it used the records read ahead.
    expect(keyReads).toBe(1);
    expect((await published()).get(1)).toBe(100);
  });

  it('reads the keys of changes that arrived after the read ahead in the same snapshot', async () => {
    await db.pool.query('UPDATE items SET v = 4 WHERE id = 3');
    const snapshot = await openSnapshot();
    await db.pool.query('UPDATE items SET v = 5 WHERE id IN (1, 3)');
    const readAhead = sync.readAhead(changesOf(1), session);
    const counts = await sync.refresh(changesOf(1, 3), snapshot, readAhead);
    expect(counts).toMatchObject({ keys: 2, readAheadKeys: 1, loaded: 2 });
    // The read ahead, then key 3 alone.
    expect(keyReads).toBe(2);
    // Key 3 was read after the read ahead, in S: 100 / 4, not the 100 / 5 committed after S.
    expect((await published()).get(3)).toBe(25);
    expect((await published()).get(1)).toBe(100);
  });

  it('reads the whole cut itself when the read ahead names a key the cut does not hold', async () => {
    await db.pool.query('UPDATE items SET v = 10');
    const snapshot = await openSnapshot();
    const readAhead = sync.readAhead(changesOf(1, 2), session);
    const counts = await sync.refresh(changesOf(1), snapshot, readAhead);
    expect(counts).toMatchObject({ keys: 1, readAheadKeys: 0, loaded: 1 });
    expect((await published()).get(1)).toBe(10);
    expect((await published()).get(2)).toBe(100);
  });

  it('ignores a read ahead of another session', async () => {
    const snapshot = await openSnapshot();
    const other = await db.pool.connect();
    try {
      const readAhead = sync.readAhead(changesOf(1), other);
      expect((await sync.refresh(changesOf(1), snapshot, readAhead)).readAheadKeys).toBe(0);
    } finally {
      other.release();
    }
  });

  it("fails the refresh with the read ahead's own error, not the aborted transaction's", async () => {
    await db.pool.query('UPDATE items SET v = 0 WHERE id = 4');
    const snapshot = await openSnapshot();
    const covering = sync.readAhead(changesOf(4), session);
    await expect(sync.refresh(changesOf(4, 5), snapshot, covering)).rejects.toThrow(/division by zero/);
    // Nothing of the failed step is published.
    expect((await published()).get(4)).toBe(100);
  });

  it("fails with the read ahead's error when another read comes first (a resolve query, or a key set it does not cover)", async () => {
    await db.pool.query('UPDATE items SET v = 0 WHERE id = 4');
    const snapshot = await openSnapshot();
    const failed = sync.readAhead(changesOf(4), session);
    await expect(sync.refresh(changesOf(5), snapshot, failed)).rejects.toThrow(/division by zero/);
  });
});
