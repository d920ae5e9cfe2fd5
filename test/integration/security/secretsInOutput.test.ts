import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { freePort } from '../../support/privateServers.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, SCHEMA, USERS_QUERY } from '../daemon/daemonHarness.ts';
import { get, healthUrl } from '../daemon/operationsHarness.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';

const BIN = path.resolve('bin/tablecache.js');
const CHANNEL = 'tc_secrets_in_output';
const USERS = 20;
// Letters and digits only, so a leak shows the same text whether a URL was printed raw or percent-encoded.
const POSTGRES_SECRET = `pgSecret${randomBytes(8).toString('hex')}`;
const REDIS_SECRET = `redisSecret${randomBytes(8).toString('hex')}`;
const SECRETS = [POSTGRES_SECRET, REDIS_SECRET];
const redisUser = `tc_secret_${randomBytes(4).toString('hex')}`;
const keyPrefix = uniqueRedisPrefix('secrets');

let db: TestDatabase;
let admin: Redis;
let directory: string;
/** Everything the daemons, the CLI and the HTTP endpoints wrote, in one place for the final check. */
const captured: { source: string; text: string }[] = [];
const daemons: DaemonProcess[] = [];

/** The test database's URL with the Postgres secret as password (trust auth accepts and ignores it), on `port`. */
function postgresUrl(port?: number): string {
  const url = new URL(db.url);
  url.password = POSTGRES_SECRET;
  if (port !== undefined) url.port = String(port);
  return url.toString();
}

function redisUrl(port?: number): string {
  const url = new URL(testRedisUrl());
  url.username = redisUser;
  url.password = REDIS_SECRET;
  if (port !== undefined) url.port = String(port);
  return url.toString();
}

/** Writes a configuration with the secrets in both URLs; logs at `trace`, so every line the daemon can write is written. */
function writeConfig(name: string, urls: { postgres: string; redis: string }): string {
  return writeConfigWithRaw(name, urls).file;
}

function writeConfigWithRaw(name: string, urls: { postgres: string; redis: string }): { file: string; raw: unknown } {
  const file = path.join(directory, name);
  const raw = {
    postgres: { url: urls.postgres },
    redis: { url: urls.redis, keyPrefix },
    triggers: { channel: CHANNEL },
    daemon: { batchWindowMs: 1, logLevel: 'trace', http: { port: 0 } },
    tables: {
      users: {
        query: USERS_QUERY,
        primaryKey: 'user_id',
        sources: { [`${SCHEMA}.users`]: { key: 'user_id' }, [`${SCHEMA}.users_cities`]: { key: 'user_id' }, [`${SCHEMA}.cities`]: { key: 'city_id', match: 'city_id' } },
      },
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  return { file, raw };
}

function startDaemon(configFile: string): DaemonProcess {
  const daemon = DaemonProcess.start(configFile);
  daemons.push(daemon);
  return daemon;
}

async function captureDaemon(label: string, daemon: DaemonProcess): Promise<void> {
  await daemon.stop('SIGTERM');
  captured.push({ source: `${label}: log`, text: JSON.stringify(daemon.logs) }, { source: `${label}: stderr`, text: daemon.stderrText });
}

async function captureHttp(label: string, base: string): Promise<{ readyz: string; metrics: string }> {
  const [healthz, readyz, metrics] = await Promise.all(['/healthz', '/readyz', '/metrics'].map((endpoint) => get(`${base}${endpoint}`)));
  captured.push({ source: `${label}: /healthz`, text: healthz!.text }, { source: `${label}: /readyz`, text: readyz!.text }, { source: `${label}: /metrics`, text: metrics!.text });
  return { readyz: readyz!.text, metrics: metrics!.text };
}

/** Runs the CLI in a child process, as a user would; keeps what it printed. */
function tablecache(...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: directory }, (error, stdout, stderr) => {
      captured.push({ source: `tablecache ${args.join(' ')}`, text: stdout + stderr });
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, output: stdout + stderr });
    });
  });
}

beforeAll(async () => {
  db = await createTestDatabase('secrets');
  await createUsers(db.pool, USERS, 3);
  directory = mkdtempSync(path.join(tmpdir(), 'tc-secrets-'));
  admin = new Redis(testRedisUrl(), { lazyConnect: true });
  await admin.connect();
  await admin.call('ACL', 'SETUSER', redisUser, 'on', `>${REDIS_SECRET}`, `~{${keyPrefix}*`, `&{${keyPrefix}*`, '+@all');
  const { file, raw } = writeConfigWithRaw('healthy.json', { postgres: postgresUrl(), redis: redisUrl() });
  await installConfigTriggers(db.pool, parseConfig(raw, { file }));
});

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  if (admin) {
    await admin.call('ACL', 'DELUSER', redisUser);
    await deleteKeysWithPrefix(admin, keyPrefix);
    admin.disconnect();
  }
  if (directory) rmSync(directory, { recursive: true, force: true });
  await db?.drop();
});

describe('passwords in the connection URLs', () => {
  it('appear nowhere in what a working daemon logs or serves, nor in what verify and triggers status print', async () => {
    const file = path.join(directory, 'healthy.json');
    const daemon = startDaemon(file);
    await daemon.waitForLog('table loaded', 1, 15_000);
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Renamed' WHERE user_id = 1`);
    await using reader = await openReader({ redis: admin, table: 'users', keyPrefix });
    await waitFor('user 1 renamed', async () => (await reader.get(1))?.['user_name'] === 'Renamed');
    const { metrics } = await captureHttp('working daemon', await healthUrl(daemon));
    expect(metrics).toContain('tablecache_records{table="users"}');
    const runs = await Promise.all([tablecache('verify', '-c', file), tablecache('triggers', 'status', '-c', file)]);
    expect(runs.map((run) => run.code)).toEqual([0, 0]);
    await captureDaemon('working daemon', daemon);
    expect(daemon.logs.length).toBeGreaterThan(10);
  });

  it('appear nowhere when Redis or Postgres cannot be reached (logs, /readyz, /metrics, CLI errors)', async () => {
    const [closedRedisPort, closedPostgresPort] = [await freePort(), await freePort()];
    const noRedisFile = writeConfig('no-redis.json', { postgres: postgresUrl(), redis: redisUrl(closedRedisPort) });
    const noPostgresFile = writeConfig('no-postgres.json', { postgres: postgresUrl(closedPostgresPort), redis: redisUrl() });
    // A URL that does not even parse is refused without being echoed.
    const malformedFile = writeConfig('malformed.json', { postgres: postgresUrl().replace(/:\d+\//, ':port/'), redis: redisUrl().replace('redis://', 'redis//') });
    // The CLI runs start first: each is a process that compiles the CLI, the slowest part here.
    const cliRuns = Promise.all([
      tablecache('verify', '-c', noRedisFile),
      tablecache('verify', '-c', noPostgresFile),
      tablecache('triggers', 'status', '-c', noPostgresFile),
      tablecache('verify', '-c', malformedFile),
    ]);
    const noRedis = startDaemon(noRedisFile);
    const noPostgres = startDaemon(noPostgresFile);
    await noRedis.waitForLog('waiting for Redis: it does not answer yet', 2);
    await noPostgres.waitForLog('waiting for Postgres: it does not accept connections yet', 1);
    // The failures name the server they could not reach, so a URL with its password would show here.
    const { readyz: redisReadyz } = await captureHttp('daemon without Redis', await healthUrl(noRedis));
    expect(redisReadyz).toContain(`:${closedRedisPort}`);
    const { readyz: postgresReadyz } = await captureHttp('daemon without Postgres', await healthUrl(noPostgres));
    expect(postgresReadyz).toContain(`:${closedPostgresPort}`);
    await Promise.all([captureDaemon('daemon without Redis', noRedis), captureDaemon('daemon without Postgres', noPostgres)]);

    const [noRedisVerify, noPostgresVerify, noPostgresStatus, malformed] = await cliRuns;
    expect(noRedisVerify).toMatchObject({ code: 3, output: expect.stringContaining(`:${closedRedisPort}`) });
    expect(noPostgresVerify).toMatchObject({ code: 3, output: expect.stringContaining(`:${closedPostgresPort}`) });
    expect(noPostgresStatus).toMatchObject({ code: 3, output: expect.stringContaining(`:${closedPostgresPort}`) });
    expect(malformed).toMatchObject({ code: 2, output: expect.stringMatching(/postgres\.url: expected a URL/) });
  });

  it('leaves every captured output free of both passwords', () => {
    expect(captured.length).toBeGreaterThan(14);
    for (const { source, text } of captured) {
      for (const secret of SECRETS) expect(text.includes(secret), `${source} contains a password:\n${text.slice(0, 2000)}`).toBe(false);
    }
  });
});
