import { describe, expect, it } from 'vitest';
import { logicalCaptureChecks } from '../../../sql-triggers/logicalCaptureChecks.ts';
import type { LogicalCaptureSpec } from '../../../sql-triggers/logicalCaptureSpec.ts';
import type { CaptureSlotState, LogicalCaptureState } from '../../../sql-triggers/logicalCaptureState.ts';

const spec: LogicalCaptureSpec = { slot: 'cache_slot', publication: 'cache_pub', sources: [{ schema: 'public', table: 'orders', keyColumns: ['order_id'] }] };

/** A server where everything is in order; each test breaks one thing. */
function ready(overrides: Partial<LogicalCaptureState> = {}, server: Partial<LogicalCaptureState['server']> = {}): LogicalCaptureState {
  return {
    server: {
      database: 'app',
      walLevel: 'logical',
      inRecovery: false,
      serverVersion: 150_004,
      maxReplicationSlots: 10,
      usedReplicationSlots: 0,
      maxWalSenders: 10,
      usedWalSenders: 0,
      maxSlotWalKeepSizeMb: -1,
      ...server,
    },
    roles: [{ name: 'app', mayReplicate: true }],
    slot: null,
    publication: null,
    identities: [{ source: 'public.orders', name: 'public.orders', kind: 'source', identity: 'default', identityColumns: ['order_id'] }],
    partitionTruncate: [],
    ...overrides,
  };
}

const slot: CaptureSlotState = {
  slotType: 'logical',
  plugin: 'pgoutput',
  database: 'app',
  active: false,
  activePid: null,
  walStatus: 'reserved',
  safeWalSizeBytes: null,
  confirmedFlushLsn: '0/1',
  restartLsn: '0/1',
  lagBytes: 0,
  retainedWalBytes: 0,
  flushLagSeconds: null,
};

const topics = (state: LogicalCaptureState) => logicalCaptureChecks(state, spec).map((check) => `${check.level} ${check.topic}: ${check.fix}`);

describe('logicalCaptureChecks', () => {
  it('finds nothing on a ready server', () => {
    expect(logicalCaptureChecks(ready(), spec)).toEqual([]);
  });

  it('needs a free slot only when the slot does not exist yet', () => {
    expect(topics(ready({}, { maxReplicationSlots: 2, usedReplicationSlots: 2 }))).toEqual([
      'problem replication_slots: ALTER SYSTEM SET max_replication_slots = 3; then restart Postgres (a reload is not enough), or drop a slot nothing reads',
    ]);
    expect(topics(ready({ slot }, { maxReplicationSlots: 2, usedReplicationSlots: 2 }))).toEqual([]);
  });

  it('warns when no WAL sender is free for the daemon, unless it already streams', () => {
    expect(topics(ready({}, { maxWalSenders: 2, usedWalSenders: 2 }))).toEqual([
      'warning wal_senders: ALTER SYSTEM SET max_wal_senders = 4; then restart Postgres (a reload is not enough)',
    ]);
    expect(topics(ready({ slot: { ...slot, active: true, activePid: 42 } }, { maxWalSenders: 2, usedWalSenders: 2 }))).toEqual([]);
  });

  it('refuses a standby, a slot that is not a pgoutput slot of this database, and a lost slot still held', () => {
    expect(topics(ready({}, { inRecovery: true }))).toEqual(['problem standby: point postgres.url at the primary']);
    for (const other of [{ slotType: 'physical', plugin: null, database: null }, { plugin: 'test_decoding' }, { database: 'other' }]) {
      expect(topics(ready({ slot: { ...slot, ...other } }))).toEqual([
        "problem slot: set capture.slot to another name, or drop it where it belongs: SELECT pg_drop_replication_slot('cache_slot');",
      ]);
    }
    expect(topics(ready({ slot: { ...slot, walStatus: 'lost', active: true, activePid: 7 } }))[0]).toMatch(/^problem slot: stop the daemon, run `tablecache capture install`/);
    // A lost slot nobody holds is install's to recreate, not a problem.
    expect(topics(ready({ slot: { ...slot, walStatus: 'lost' } }))).toEqual([]);
  });

  it('names the role that may not replicate, and a role that does not exist', () => {
    expect(topics(ready({ roles: [{ name: 'app', mayReplicate: true }, { name: 'Daemon', mayReplicate: false }, { name: 'ghost', mayReplicate: null }] }))).toEqual([
      'problem replication_role: as a superuser: ALTER ROLE "Daemon" REPLICATION; (Amazon RDS: GRANT rds_replication TO "Daemon";)',
      'problem replication_role: correct the user in the connection URL',
    ]);
  });

  it('checks every partition: the one whose identity lacks a key column is named, the others pass', () => {
    const partitioned = { ...spec, sources: [{ schema: 'public', table: 'events', keyColumns: ['tenant', 'id'] }] };
    const state = ready({
      identities: [
        { source: 'public.events', name: 'public.events_2025', kind: 'partition', identity: 'full', identityColumns: null },
        { source: 'public.events', name: 'public.events_2026', kind: 'partition', identity: 'index', identityColumns: ['id'] },
      ],
    });
    const checks = logicalCaptureChecks(state, partitioned).filter((check) => check.topic === 'replica_identity');
    expect(checks).toHaveLength(1);
    expect(checks[0]!.message).toBe(
      'public.events_2026 (below source public.events): a replica identity index on (id) does not hold key column(s) tenant, so an UPDATE or DELETE would not carry their old values and the cached records of the old key could not be found',
    );
    expect(checks[0]!.fix).toMatch(/^ALTER TABLE public\.events_2026 REPLICA IDENTITY FULL; \(or REPLICA IDENTITY USING INDEX on a unique index over id, tenant/);
  });

  it('refuses inheritance children that are not sources themselves, and warns that a partition truncated alone is not published', () => {
    const parent = { ...spec, sources: [{ schema: 'public', table: 'items', keyColumns: ['id'] }] };
    const identities = [
      { source: 'public.items', name: 'public.items', kind: 'source', identity: 'default', identityColumns: ['id'] },
      { source: 'public.items', name: 'public.items_archive', kind: 'inheritance_child', identity: 'default', identityColumns: ['id'] },
    ] as const;
    const checks = logicalCaptureChecks(ready({ identities }), parent);
    expect(checks.map((check) => [check.level, check.topic, check.message])).toEqual([
      [
        'problem',
        'inheritance_child',
        'public.items has inheritance children (public.items_archive): the publication sends their changes under their own names, which the logical capture does not follow, so they would be lost',
      ],
    ]);
    // Named as a source itself, the child's changes are mapped like any source's.
    const both = { ...spec, sources: [...parent.sources, { schema: 'public', table: 'items_archive', keyColumns: ['id'] }] };
    expect(logicalCaptureChecks(ready({ identities }), both)).toEqual([]);

    const partitioned = ready({ identities: [{ source: 'public.orders', name: 'public.orders_2026', kind: 'partition', identity: 'default', identityColumns: ['order_id'] }] });
    expect(topics(partitioned)).toEqual([
      'warning partition_truncate: empty a single partition with DELETE, or detach it before truncating or dropping it; or keep capture.method triggers, whose partition triggers report it',
    ]);
  });

  it('lists problems before warnings', () => {
    const filtered = { ...spec, sources: [{ ...spec.sources[0]!, columns: ['status'] }] };
    const checks = logicalCaptureChecks(ready({}, { walLevel: 'replica', maxWalSenders: 0 }), filtered);
    expect(checks.map((check) => `${check.level} ${check.topic}`)).toEqual(['problem wal_level', 'warning wal_senders', 'warning replica_identity']);
  });
});
