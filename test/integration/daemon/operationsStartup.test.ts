import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { DaemonStorage, StorageConnectOptions, TableWriter, TableWriterOptions } from '../../../daemon/daemonStorage.ts';
import { RedisDaemonStorage } from '../../../daemon/redisDaemonStorage.ts';
import { TablecacheDaemon } from '../../../daemon/tablecacheDaemon.ts';
import { LeaseLostError } from '../../../lib/redis/redisErrors.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix, withRedis } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, writeSeedConfig } from './daemonHarness.ts';
import { freePort, startPrivateRedis } from '../../support/privateServers.ts';
import { get, healthUrl, parseMetrics, startTcpForwarder, writeOperationsConfig } from './operationsHarness.ts';

const USERS = 50;
const CHANNEL = 'tc_operations_startup';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
let redisServer: ChildProcess | undefined;
let forwarder: { close(): Promise<void> } | undefined;
let removeConfig: (() => void) | undefined;

beforeAll(async () => {
  db = await createTestDatabase('operations_startup');
  await createUsers(db.pool, USERS, 5);
});

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  redisServer?.kill('SIGKILL');
  await forwarder?.close();
  removeConfig?.();
  await db?.drop();
});

describe('a daemon started while Postgres and Redis are down', () => {
  it('stays up, says on /readyz what it waits for, becomes ready once they answer, and is not ready while LISTEN is down or the resync after it runs', async () => {
    const redisPort = await freePort();
    const postgresPort = await freePort();
    const postgresUrl = new URL(db.url);
    const target = { host: postgresUrl.hostname, port: Number(postgresUrl.port || 5432) };
    postgresUrl.host = `127.0.0.1:${postgresPort}`;
    const keyPrefix = uniqueRedisPrefix('startup');
    const written = writeOperationsConfig({ postgresUrl: postgresUrl.toString(), redisUrl: `redis://127.0.0.1:${redisPort}`, keyPrefix, channel: CHANNEL });
    removeConfig = written.remove;
    await installConfigTriggers(db.pool, written.config);

    daemon = DaemonProcess.start(written.file);
    const url = await healthUrl(daemon);
    expect(await get(`${url}/healthz`)).toMatchObject({ status: 200 });
    await daemon.waitForLog('waiting for Redis: it does not answer yet', 3);
    const waitingForRedis = await get(`${url}/readyz`);
    expect(waitingForRedis.status).toBe(503);
    expect(waitingForRedis.body.reasons).toEqual([expect.stringMatching(new RegExp(`^waiting for Redis at redis://127\\.0\\.0\\.1:${redisPort}.*ECONNREFUSED`))]);
    expect(daemon.child.exitCode).toBeNull();

    redisServer = await startPrivateRedis(redisPort);
    await waitFor('/readyz to name Postgres', async () => {
      const { body } = await get(`${url}/readyz`);
      const reason = body.reasons?.[0] ?? '';
      return reason.startsWith(`waiting for Postgres at postgres://`) && reason.includes(`:${postgresPort}/`);
    });
    await daemon.waitForLog('waiting for Postgres: it does not accept connections yet', 2);
    expect(daemon.child.exitCode).toBeNull();

    forwarder = await startTcpForwarder(postgresPort, target);
    await waitFor('/readyz to answer 200', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 20_000, intervalMs: 50 });
    const [result] = await verifyCache(written.config);
    expect(result).toMatchObject({ equal: true, postgresRecords: USERS });

    // Postgres goes away while the daemon runs: not ready, a reconnect counted, ready again once it is back.
    await forwarder.close();
    await waitFor('/readyz to report the LISTEN connection down', async () => {
      const { status, body } = await get(`${url}/readyz`);
      return status === 503 && (body.reasons ?? []).some((reason) => reason.startsWith('the LISTEN connection to Postgres is down'));
    });
    forwarder = await startTcpForwarder(postgresPort, target);
    await waitFor('/readyz to answer 200 again', async () => (await get(`${url}/readyz`)).status === 200, { timeoutMs: 20_000, intervalMs: 50 });
    const metrics = parseMetrics((await get(`${url}/metrics`)).text);
    expect(metrics.get('tablecache_reconnects_total{source="postgres"}')).toBe(1);
    expect(metrics.get('tablecache_reloads_total{table="users",reason="listen_lost"}')).toBe(1);

    expect(await daemon.stop('SIGTERM')).toBe(0);
  });
});

describe('a daemon closed while it waits to start', () => {
  it('stops waiting: start() rejects with TC_CLOSED and /readyz would say stopped', async () => {
    const redisPort = await freePort();
    const written = writeOperationsConfig({ postgresUrl: db.url, redisUrl: `redis://127.0.0.1:${redisPort}`, keyPrefix: uniqueRedisPrefix('closed'), channel: CHANNEL });
    try {
      const daemon = new TablecacheDaemon(written.config, { logger: pino({ level: 'silent' }) });
      const waiting = new Promise((resolve) => daemon.once('waiting', resolve));
      const started = daemon.start();
      await waiting;
      expect(daemon.readiness()).toMatchObject({ ready: false, phase: 'starting', reasons: [expect.stringMatching(/^waiting for Redis at /)] });
      await daemon.close();
      await expect(started).rejects.toMatchObject({ code: 'TC_CLOSED' });
      expect(daemon.readiness()).toMatchObject({ ready: false, phase: 'stopped', reasons: ['stopped'] });
    } finally {
      written.remove();
    }
  });
});

/**
 * The real Redis storage, except that its first open of a writer loses the
 * lease as Redis restarting between the lease and the table's recovery
 * makes it (the fenced recovery script finds no fence token), and its second
 * open waits for `release` (so that the test can look at the daemon while it retries).
 */
class StorageLosingTheFirstLease implements DaemonStorage {
  readonly opens: string[] = [];
  private readonly inner: RedisDaemonStorage;
  release: () => void = () => {};
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));

  constructor(keyPrefix: string) {
    this.inner = new RedisDaemonStorage({ url: testRedisUrl(), keyPrefix, tls: false });
  }

  get description(): string {
    return this.inner.description;
  }

  get barrierMarks(): DaemonStorage['barrierMarks'] {
    return this.inner.barrierMarks;
  }

  connect(options: StorageConnectOptions): Promise<void> {
    return this.inner.connect(options);
  }

  async openWriter(options: TableWriterOptions): Promise<TableWriter> {
    this.opens.push(options.table);
    if (this.opens.length === 1) {
      throw new LeaseLostError(options.table, 'the fence token is now false', true);
    }
    await this.gate;
    return this.inner.openWriter(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('a daemon whose writer lease is lost while it opens a table (Redis restarted meanwhile)', () => {
  it('retries the open instead of exiting, not ready meanwhile, and loads the table', async () => {
    const keyPrefix = uniqueRedisPrefix('leaselostatopen');
    const written = writeSeedConfig({ postgresUrl: db.url, redisUrl: testRedisUrl(), keyPrefix, channel: CHANNEL });
    await installConfigTriggers(db.pool, written.config);
    const storage = new StorageLosingTheFirstLease(keyPrefix);
    const daemon = new TablecacheDaemon(written.config, { logger: pino({ level: 'silent' }), storage });
    try {
      const started = daemon.start();
      started.catch(() => {}); // awaited below; a start that fails meanwhile fails the wait first
      // The retry waits for the gate: the daemon is still starting, and says what it waits for.
      await waitFor('a second open', () => storage.opens.length === 2);
      expect(daemon.readiness()).toMatchObject({ ready: false, phase: 'starting', reasons: [expect.stringMatching(/^waiting for Redis at .*lost its lease/)] });
      storage.release();
      await started;
      await waitFor('the table loaded', () => daemon.readiness().tables['users']?.loaded === true);
      expect(storage.opens).toEqual(['users', 'users']);
    } finally {
      storage.release();
      await daemon.close();
      written.remove();
      await withRedis((redis) => deleteKeysWithPrefix(redis, keyPrefix));
    }
  });
});
