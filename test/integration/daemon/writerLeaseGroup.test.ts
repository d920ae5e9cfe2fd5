import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyColumnIndexes } from '../../../lib/core/keyColumnIndexes.ts';
import { silentLogger } from '../../../lib/core/logger.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import type { Row } from '../../../daemon/daemonStorage.ts';
import { RedisDaemonStorage } from '../../../daemon/redisDaemonStorage.ts';
import { TableSync } from '../../../daemon/tableSync.ts';
import { WriterLeaseGroup } from '../../../daemon/writerLeaseGroup.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

const prefix = uniqueRedisPrefix('leasegroup');
const scorer: RecordScorer<Row> = { indexNames: ['primary_key'], score: (_, row) => Number(row.id), primaryKey: (row) => Number(row.id) };
const TTL_MS = 600;
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(testRedisUrl());
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

/** One daemon's writers, as the daemon opens them: a storage, a lease group, a TableSync per table (only their leases are used here). */
class DaemonLeases {
  readonly reloads: string[] = [];
  readonly group = new WriterLeaseGroup({ logger: silentLogger, requestReload: (table) => this.reloads.push(table) });
  private constructor(readonly storage: RedisDaemonStorage) {}

  static async connect(): Promise<DaemonLeases> {
    const storage = new RedisDaemonStorage({ url: testRedisUrl(), keyPrefix: prefix, tls: false }, { leaseTtlMs: TTL_MS });
    await storage.connect({ logger: silentLogger, events: new EventEmitter<DaemonEvents>() });
    return new DaemonLeases(storage);
  }

  open(name: string, standby: boolean): Promise<TableSync> {
    return TableSync.open({
      name,
      indexes: scorer as unknown as KeyColumnIndexes,
      sources: [],
      db: undefined as never,
      pool: undefined as never,
      storage: this.storage,
      logger: silentLogger,
      events: new EventEmitter<DaemonEvents>(),
      standby,
      onLeaseLost: () => {},
      leases: this.group,
    });
  }
}

describe('WriterLeaseGroup', () => {
  it('after Redis lost the leases, gives every table up when a starting standby took one, instead of waiting for it while holding the others', async () => {
    // The chaos run's lasting stall: the running daemon took `accounts` back and waited for `users`, which the standby
    // had taken and held while it waited for `accounts`.
    const running = await DaemonLeases.connect();
    const standby = await DaemonLeases.connect();
    const opened: TableSync[] = [];
    try {
      const [users, accounts] = [await running.open('users', false), await running.open('accounts', false)];
      opened.push(users, accounts);
      await deleteKeysWithPrefix(redis, prefix);
      await running.group.replace(accounts);
      expect(await accounts.writable()).toBe(true);

      const standbyUsers = await standby.open('users', true);
      opened.push(standbyUsers);
      const standbyAccounts = standby.open('accounts', true);
      const usersBack = running.group.replace(users);

      // The standby gets `accounts` once the running daemon gave it up; the running daemon now waits as a standby.
      const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the standby never got accounts: the two daemons wait for each other')), 20 * TTL_MS));
      deadline.catch(() => {});
      opened.push(await Promise.race([standbyAccounts, deadline]));
      expect(await Promise.race([usersBack.then(() => 'replaced'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 2 * TTL_MS))])).toBe('waiting');
      expect([await users.writable(), await accounts.writable()]).toEqual([false, false]);

      // The standby stops: the running daemon takes every table back, and reloads the one it did not ask for.
      for (const sync of opened.splice(2)) await sync.close();
      await usersBack;
      expect([await users.writable(), await accounts.writable()]).toEqual([true, true]);
      expect(running.reloads).toEqual(['accounts']);
    } finally {
      for (const sync of opened) await sync.close().catch(() => {});
      await running.storage.close();
      await standby.storage.close();
    }
  });

  it('takes a lost lease back at once when nobody took it, keeping the other tables', async () => {
    const daemon = await DaemonLeases.connect();
    const [users, accounts] = [await daemon.open('users2', false), await daemon.open('accounts2', false)];
    try {
      await redis.del(`{${prefix}users2}:lease`, `{${prefix}users2}:meta`);
      await waitFor('the lost lease to be noticed', async () => !(await users.writable()));
      await daemon.group.replace(users);
      expect([await users.writable(), await accounts.writable()]).toEqual([true, true]);
      expect(daemon.reloads).toEqual([]);
    } finally {
      await users.close();
      await accounts.close();
      await daemon.storage.close();
    }
  });
});
