import { Command } from 'commander';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { waitForBarrier } from '../../../lib/client/barrier.ts';
import { sendBarrier } from '../../../lib/postgres/barrier.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createCliContext } from '../../../cli/cliContext.ts';
import { addVerifyCommand } from '../../../cli/verifyCommand.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { installConfigCapture, privateLogicalDatabase } from '../../support/logicalPostgres.ts';
import { createTestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, releaseDaemonTest, installConfigTriggers, SCHEMA, writeSeedConfig } from './daemonHarness.ts';

/**
 * The daemon end to end, as a child process, in both capture modes (issue
 * #16): triggers + NOTIFY on the shared Postgres, and logical decoding on a
 * private cluster with wal_level = logical. Where the modes differ on
 * purpose (a lost LISTEN session reloads, a lost walsender replays from the
 * slot; a restarted daemon reloads, or resumes from the slot), each test
 * says what its mode must do.
 */

type User = Record<string, unknown>;
type CaptureMethod = 'triggers' | 'logical';

const USERS = 500;
const CITIES = 10;
const CHANNEL = 'tc_daemon_test';

for (const method of ['triggers', 'logical'] as const satisfies readonly CaptureMethod[]) {
  describe(`tablecache daemon, capture ${method}`, () => {
    let db: { readonly url: string; readonly pool: pg.Pool; drop(): Promise<void> };
    let redis: Redis;
    let reader: TableReader<User>;
    let config: TablecacheConfig;
    let configFile: string;
    let removeConfig: () => void;
    let daemon: DaemonProcess;
    const keyPrefix = uniqueRedisPrefix(`daemon-${method}`);

    async function verifyClean(): Promise<void> {
      const [result] = await verifyCache(config);
      expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, postgresRecords: result!.redisRecords });
    }

    /** Waits (with a deadline) until the cache equals Postgres. */
    async function waitUntilClean(timeoutMs = 20_000): Promise<void> {
      await waitFor('verify to find the cache equal to Postgres', async () => (await verifyCache(config))[0]!.equal, { timeoutMs, intervalMs: 100 });
      await verifyClean();
    }

    /** Sends a barrier after everything committed so far and waits until the daemon has applied all of it. */
    async function barrier(): Promise<void> {
      const id = await sendBarrier(db.pool, { channel: CHANNEL, method });
      await waitForBarrier(redis, id, { keyPrefix, timeoutMs: 20_000 });
    }

    /** The backend that brings the daemon its changes: the LISTEN session, or the walsender streaming the slot. */
    async function changeSessionPid(): Promise<number | undefined> {
      const query =
        method === 'logical'
          ? 'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL'
          : "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tablecache-listener' AND $1::text IS NOT NULL";
      const result = await db.pool.query<{ pid: number }>(query, [config.capture.slot]);
      return result.rows[0]?.pid;
    }

    /** Sends `text` where the daemon reads its own messages: a NOTIFY on its channel, or a logical message with the channel as prefix. */
    async function sendOnChannel(text: string): Promise<void> {
      const send = method === 'logical' ? 'SELECT pg_logical_emit_message(true, $1, $2)' : 'SELECT pg_notify($1, $2)';
      await db.pool.query(send, [CHANNEL, text]);
    }

    beforeAll(async () => {
      db = method === 'logical' ? await privateLogicalDatabase() : await createTestDatabase('daemon');
      await createUsers(db.pool, USERS, CITIES);
      ({ file: configFile, config, remove: removeConfig } = writeSeedConfig({
        postgresUrl: db.url,
        redisUrl: testRedisUrl(),
        keyPrefix,
        channel: CHANNEL,
        // A SIGKILLed daemon's lease expires sooner (default 5 s); reloads are not throttled (default 5 s apart).
        daemon: { leaseTtlMs: 3_000, minReloadIntervalMs: 0 },
        capture: { method },
      }));
      if (method === 'logical') await installConfigCapture(db.pool, config);
      else await installConfigTriggers(db.pool, config);
      redis = new Redis(testRedisUrl());
      reader = await openReader<User>({ redis, table: 'users', keyPrefix });
      daemon = DaemonProcess.start(configFile);
      await daemon.waitForLog('table loaded');
    });

    afterAll(async () => {
      await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGKILL', reader, redis, keyPrefix, removeConfig });
      await db?.drop();
    });

    describe('on the seed schema', () => {
      it('loads every user with their city at start', async () => {
        expect(await reader.get(2)).toMatchObject({ user_id: 2, user_name: 'User 2', user_nickname: 'u2', city_name: 'City 3' });
        await verifyClean();
      });

      it("shows a user's new name", async () => {
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed 7' WHERE user_id = 7`);
        await waitFor('user 7 renamed in Redis', async () => (await reader.get(7))?.['user_name'] === 'Renamed 7');
        await verifyClean();
      });

      it('refreshes every cached user of a renamed city', async () => {
        await db.pool.query(`UPDATE ${SCHEMA}.cities SET name = 'Springfield' WHERE city_id = 4`);
        const members = (await db.pool.query<{ user_id: number }>(`SELECT user_id FROM ${SCHEMA}.users_cities WHERE city_id = 4`)).rows.map((row) => row.user_id);
        expect(members.length).toBe(USERS / CITIES);
        await waitFor('every user of city 4 to show its new name', async () =>
          (await reader.getMany(members)).every((user) => user?.['city_name'] === 'Springfield'),
        );
        await verifyClean();
      });

      it('moves a user to another city', async () => {
        await db.pool.query(`UPDATE ${SCHEMA}.users_cities SET city_id = 9 WHERE user_id = 11`);
        await waitFor('user 11 in city 9', async () => (await reader.get(11))?.['city_name'] === 'City 9');
        expect(await reader.get(11)).toMatchObject({ city_id: 9 });
        await verifyClean();
      });

      it('adds a user inserted together with their new city', async () => {
        const client = await db.pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(`INSERT INTO ${SCHEMA}.cities VALUES (100, 'Newtown')`);
          await client.query(`INSERT INTO ${SCHEMA}.users VALUES (1000, 'Newcomer', NULL)`);
          await client.query(`INSERT INTO ${SCHEMA}.users_cities VALUES (1000, 100)`);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
        await waitFor('user 1000 in Redis', async () => (await reader.get(1000))?.['city_name'] === 'Newtown');
        await verifyClean();
      });

      it('removes a deleted user', async () => {
        await db.pool.query(`DELETE FROM ${SCHEMA}.users_cities WHERE user_id = 13; DELETE FROM ${SCHEMA}.users WHERE user_id = 13`);
        await waitFor('user 13 gone from Redis', async () => (await reader.get(13)) === undefined);
        await verifyClean();
      });

      it('lets a writer read its own write right after a barrier', async () => {
        await db.pool.query(`UPDATE ${SCHEMA}.users SET nickname = 'barrier' WHERE user_id = 21`);
        await barrier();
        expect(await reader.get(21)).toMatchObject({ user_nickname: 'barrier' });
      });

      it('changes nothing for a transaction that rolls back', async () => {
        const before = await reader.get(23);
        const client = await db.pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(`UPDATE ${SCHEMA}.users SET name = 'Never' WHERE user_id = 23`);
          await client.query('ROLLBACK');
        } finally {
          client.release();
        }
        await barrier();
        expect(await reader.get(23)).toEqual(before);
        await verifyClean();
      });

      it('refreshes a key changed many times in one burst once, to its last value', async () => {
        for (let round = 1; round <= 20; round++) await db.pool.query(`UPDATE ${SCHEMA}.users SET name = $1 WHERE user_id = 31`, [`Round ${round}`]);
        await barrier();
        expect(await reader.get(31)).toMatchObject({ user_name: 'Round 20' });
        await verifyClean();
      });

      it('skips garbage payloads on its channel, logging them cut short, and keeps serving', async () => {
        const garbage = ['not json', '[]', '{"v":1,"op":"U"}', `{"junk":"${'x'.repeat(5000)}"}`, ''];
        for (const payload of garbage) await sendOnChannel(payload);
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'After garbage' WHERE user_id = 33`);
        await barrier();
        expect(await reader.get(33)).toMatchObject({ user_name: 'After garbage' });
        const skipped = daemon.logged('skipped a malformed notification payload');
        expect(skipped.length).toBe(garbage.length);
        expect(Math.max(...skipped.map((line) => String(line['payload']).length))).toBeLessThanOrEqual(201);
        await verifyClean();
      });

      it('reloads a truncated source table: every cached user is gone, then back after reinsertion', async () => {
        const client = await db.pool.connect();
        try {
          await client.query(`CREATE TEMP TABLE saved AS SELECT * FROM ${SCHEMA}.users_cities`);
          await client.query(`TRUNCATE ${SCHEMA}.users_cities`);
          await waitFor('the cached table to be empty', async () => (await reader.info()).recordCount === 0);
          await verifyClean();
          await client.query(`INSERT INTO ${SCHEMA}.users_cities SELECT * FROM saved`);
        } finally {
          client.release();
        }
        await waitUntilClean();
        expect((await reader.info()).recordCount).toBe(USERS);
      });
    });

    describe('recovering from faults', () => {
      const lostSession =
        method === 'logical'
          ? 'replays from the slot without a reload after its walsender is terminated during a stream of writes'
          : 'resyncs after its LISTEN backend is terminated during a stream of writes';
      it(lostSession, async () => {
        const oldPid = await changeSessionPid();
        expect(oldPid).toBeDefined();
        const reloads = daemon.logged('table reloaded').length;
        const { generation } = await reader.info();
        const writes = (async () => {
          for (let i = 0; i < 60; i++) {
            await db.pool.query(`UPDATE ${SCHEMA}.users SET name = $1 WHERE user_id = $2`, [`Stream ${i}`, 40 + (i % 20)]);
          }
        })();
        await waitFor('some streamed writes', async () => (await reader.get(40))?.['user_name'] !== 'User 40');
        await db.pool.query('SELECT pg_terminate_backend($1)', [oldPid]);
        await writes;
        await daemon.waitForLog(method === 'logical' ? 'streaming from the replication slot' : 'LISTEN is active again', method === 'logical' ? 2 : 1);
        await waitFor('a new backend bringing the changes', async () => {
          const pid = await changeSessionPid();
          return pid !== undefined && pid !== oldPid;
        });
        await waitUntilClean();
        for (let user = 40; user < 60; user++) expect((await reader.get(user))?.['user_name']).toMatch(/^Stream /);
        if (method === 'logical') {
          // The slot kept every change not acknowledged: nothing was reloaded.
          expect(daemon.logged('table reloaded').length).toBe(reloads);
          expect((await reader.info()).generation).toBe(generation);
        }
      });

      it('reloads when every key of the cache is deleted from Redis', async () => {
        await deleteKeysWithPrefix(redis, keyPrefix);
        await waitFor('the cache to be loaded again', async () => (await reader.info()).loaded, { timeoutMs: 20_000 });
        await waitUntilClean();
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'After flush' WHERE user_id = 61`);
        await barrier();
        expect(await reader.get(61)).toMatchObject({ user_name: 'After flush' });
      });

      it('refuses to start beside a running daemon with --no-standby, naming the lease holder', async () => {
        const second = DaemonProcess.start(configFile, '--no-standby');
        expect(await second.waitForExit()).toBe(1);
        expect(second.stderrText).toMatch(/already has a writer/);
      });

      const restart =
        method === 'logical'
          ? 'resumes from the slot after SIGKILL and a restart, without a reload, including changes made while it was down'
          : 'is correct again after SIGKILL and a restart, including changes made while it was down';
      it(restart, async () => {
        await barrier();
        const { generation } = await reader.info();
        expect(await daemon.stop('SIGKILL')).toBeNull();
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'While down' WHERE user_id = 63`);
        await db.pool.query(`DELETE FROM ${SCHEMA}.users_cities WHERE user_id = 65`);
        daemon = DaemonProcess.start(configFile);
        // The killed daemon's lease has to expire before the new one may write.
        if (method === 'logical') {
          await daemon.waitForLog('daemon started', 1, 40_000);
          expect(daemon.logged('resuming from the replication slot')[0]).toMatchObject({ resumed: ['users'] });
        } else {
          await daemon.waitForLog('table loaded', 1, 40_000);
        }
        await waitUntilClean();
        expect(await reader.get(63)).toMatchObject({ user_name: 'While down' });
        expect(await reader.get(65)).toBeUndefined();
        if (method === 'logical') {
          expect(daemon.logged('table loaded')).toEqual([]);
          expect((await reader.info()).generation).toBe(generation);
        }
      });

      it('stops on SIGTERM with exit code 0 and releases its lease, keeping the data for readers', async () => {
        expect(await daemon.stop('SIGTERM')).toBe(0);
        expect(await redis.exists(`{${keyPrefix}users}:lease`)).toBe(0);
        await verifyClean();
      });
    });

    describe('tablecache verify', () => {
      it('reports a change the stopped daemon did not apply, naming the record and column, with exit code 1', async () => {
        await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Unseen' WHERE user_id = 67`);
        const output: string[] = [];
        const context = createCliContext((text) => output.push(text), (text) => output.push(text));
        const program = new Command().exitOverride();
        addVerifyCommand(program, context);
        await program.parseAsync(['node', 'tablecache', 'verify', '--config', configFile]);
        expect(context.exitCode).toBe(1);
        expect(output.join('')).toMatch(/changed\s+67 \(columns user_name\)/);
        const [result] = await verifyCache(config);
        expect(result).toMatchObject({ equal: false, changed: 1, missing: 0, extra: 0 });
      });
    });
  });
}
