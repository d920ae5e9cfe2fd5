import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, releaseDaemonTest, installConfigTriggers, SCHEMA, writeSeedConfig } from '../daemon/daemonHarness.ts';

type User = Record<string, unknown>;

const USERS = 200;
const CITIES = 10;
const CHANNEL = 'tc_least_privilege';
const SOURCE_TABLES = ['users', 'users_cities', 'cities'].map((table) => `${SCHEMA}.${table}`);
const INSUFFICIENT_PRIVILEGE = '42501';
// pino's numeric level of `warn`.
const WARN_LEVEL = 40;

// Roles are cluster-wide, unlike the per-file test database: a random suffix
// keeps test files and parallel runs apart.
const suffix = randomBytes(4).toString('hex');
const roles = { owner: `tc_owner_${suffix}`, daemon: `tc_daemon_${suffix}`, writer: `tc_writer_${suffix}` };

let db: TestDatabase;
let ownerPool: pg.Pool;
let daemonPool: pg.Pool;
let writerPool: pg.Pool;
let redis: Redis;
let reader: TableReader<User>;
let config: TablecacheConfig;
let configFile: string;
let removeConfig: () => void;
let daemon: DaemonProcess;
let keyPrefix: string;

/** The test database's URL logging in as `role` (trust auth on loopback needs no password). */
function urlAs(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = '';
  return url.toString();
}

function poolAs(role: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: urlAs(role), max: 2 });
  pool.on('error', () => {});
  return pool;
}

/**
 * Creates the three roles with nothing but LOGIN, and takes away what Postgres
 * grants PUBLIC on a new database (CONNECT, TEMPORARY) and on schema public
 * (USAGE), so every privilege a role has below is one granted here.
 */
async function createRoles(): Promise<void> {
  const database = (await db.pool.query<{ name: string }>('SELECT current_database() AS name')).rows[0]!.name;
  await db.pool.query(`
    CREATE ROLE ${roles.owner} LOGIN;
    CREATE ROLE ${roles.daemon} LOGIN;
    CREATE ROLE ${roles.writer} LOGIN;
    REVOKE ALL ON DATABASE "${database}" FROM PUBLIC;
    REVOKE ALL ON SCHEMA public FROM PUBLIC;
    GRANT CONNECT, CREATE ON DATABASE "${database}" TO ${roles.owner};
    GRANT CONNECT ON DATABASE "${database}" TO ${roles.daemon}, ${roles.writer};
  `);
}

/** The grants of docs/security.md, run by the table owner. */
async function grantAsOwner(): Promise<void> {
  const tables = SOURCE_TABLES.join(', ');
  await ownerPool.query(`
    GRANT USAGE ON SCHEMA ${SCHEMA} TO ${roles.daemon}, ${roles.writer};
    GRANT SELECT ON ${tables} TO ${roles.daemon};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ${tables} TO ${roles.writer};
  `);
}

async function dropRoles(): Promise<void> {
  const names = Object.values(roles).join(', ');
  const existing = await db.pool.query('SELECT FROM pg_roles WHERE rolname = ANY($1)', [Object.values(roles)]);
  if (existing.rowCount === 0) return;
  await db.pool.query(`DROP OWNED BY ${names} CASCADE; DROP ROLE ${names}`);
}

async function expectClean(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, postgresRecords: result!.redisRecords });
}

beforeAll(async () => {
  db = await createTestDatabase('least_privilege');
  await createRoles();
  ownerPool = poolAs(roles.owner);
  daemonPool = poolAs(roles.daemon);
  writerPool = poolAs(roles.writer);
  await createUsers(ownerPool, USERS, CITIES);
  await grantAsOwner();
  keyPrefix = uniqueRedisPrefix('least_privilege');
  ({ file: configFile, config, remove: removeConfig } = writeSeedConfig({ postgresUrl: urlAs(roles.daemon), redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL }));
  await installConfigTriggers(ownerPool, config);
  redis = new Redis(testRedisUrl());
  reader = await openReader<User>({ redis, table: 'users', keyPrefix });
  daemon = DaemonProcess.start(configFile);
  await daemon.waitForLog('table loaded', 1, 15_000);
}, 30_000);

afterAll(async () => {
  await releaseDaemonTest({ daemons: [daemon], stopWith: 'SIGKILL', reader, redis, keyPrefix, removeConfig });
  await Promise.all([ownerPool?.end(), daemonPool?.end(), writerPool?.end()]);
  if (db) {
    await dropRoles();
    await db.drop();
  }
});

describe('a daemon whose Postgres role may only read the source tables', () => {
  it('has no privilege beyond SELECT on the source tables, while another role owns them and their triggers', async () => {
    const privileges = await db.pool.query<{ source: string; owner: string; can_write: boolean; can_select: boolean }>(
      `SELECT source, pg_get_userbyid(c.relowner) AS owner,
              has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS can_write,
              has_table_privilege($1, c.oid, 'SELECT') AS can_select
         FROM unnest($2::text[]) AS source JOIN pg_class c ON c.oid = source::regclass`,
      [roles.daemon, SOURCE_TABLES],
    );
    expect(privileges.rows).toEqual(SOURCE_TABLES.map((source) => ({ source, owner: roles.owner, can_write: false, can_select: true })));
    const triggerFunctionOwners = await db.pool.query<{ owner: string }>(
      `SELECT DISTINCT pg_get_userbyid(p.proowner) AS owner
         FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = ANY($1::regclass[]) AND NOT t.tgisinternal`,
      [SOURCE_TABLES],
    );
    expect(triggerFunctionOwners.rows).toEqual([{ owner: roles.owner }]);
    const database = await db.pool.query<{ can_create: boolean; can_temp: boolean }>(
      "SELECT has_database_privilege($1, current_database(), 'CREATE') AS can_create, has_database_privilege($1, current_database(), 'TEMPORARY') AS can_temp",
      [roles.daemon],
    );
    expect(database.rows[0]).toEqual({ can_create: false, can_temp: false });
  });

  it('gives the writer no grant on the trigger schema (its writes below still fire the triggers)', async () => {
    const triggerSchema = await db.pool.query<{ usage: boolean }>("SELECT has_schema_privilege($1, $2, 'USAGE') AS usage", [roles.writer, config.triggers.schema]);
    expect(triggerSchema.rows[0]).toEqual({ usage: false });
  });

  it('becomes ready and loads every user, with its sessions logged in as that role', async () => {
    const [serving] = daemon.logged('serving health and metrics');
    const readyz = await fetch(`${String(serving!['url'])}/readyz`);
    expect(readyz.status).toBe(200);
    expect((await reader.info()).recordCount).toBe(USERS);
    expect(await reader.get(2)).toMatchObject({ user_id: 2, user_name: 'User 2', user_nickname: 'u2', city_name: 'City 3' });
    const sessions = await db.pool.query<{ usename: string }>(
      "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tablecache-%'",
    );
    expect(sessions.rows).toEqual([{ usename: roles.daemon }]);
    await expectClean();
  });

  it("shows a third role's writes to a user and to a city", async () => {
    await writerPool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed 7' WHERE user_id = 7`);
    await writerPool.query(`UPDATE ${SCHEMA}.cities SET name = 'Springfield' WHERE city_id = 4`);
    await waitFor('user 7 renamed and city 4 renamed in Redis', async () => {
      const [renamed, member] = await reader.getMany([7, 3]);
      return renamed?.['user_name'] === 'Renamed 7' && member?.['city_name'] === 'Springfield';
    }, { timeoutMs: 10_000 });
    await expectClean();
  });

  it("runs the startup's planner estimate, queue reading and LISTEN with those privileges, warning about nothing", async () => {
    const [loading] = daemon.logged('loading table');
    expect(loading!['estimatedRows']).toBeGreaterThan(0);
    const usage = await daemonPool.query<{ usage: number }>('SELECT pg_notification_queue_usage() AS usage');
    expect(Number(usage.rows[0]!.usage)).toBeGreaterThanOrEqual(0);
    const listener = await db.pool.query<{ usename: string }>(
      "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tablecache-listener'",
    );
    expect(listener.rows).toEqual([{ usename: roles.daemon }]);
    const warnings = daemon.logs.filter((line) => Number(line['level']) >= WARN_LEVEL);
    expect(warnings).toEqual([]);
  });

  it('is refused a write by Postgres (42501), so the daemon works without one', async () => {
    await expect(daemonPool.query(`UPDATE ${SCHEMA}.users SET name = 'Daemon' WHERE user_id = 1`)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });
    await expect(daemonPool.query(`CREATE TABLE ${SCHEMA}.daemon_table (id integer)`)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });
    await expect(daemonPool.query('CREATE TEMP TABLE daemon_temp (id integer)')).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });
  });
});
