import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { silentLogger } from '../../../lib/core/logger.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import { connectRedisWhenReachable } from '../../../daemon/redisConnection.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { PrivateRedisSentinel } from '../../support/privateRedisTopology.ts';
import { createTestCertificates, type TestCertificates } from '../../support/tlsRedis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, SCHEMA, writeSeedConfig } from '../daemon/daemonHarness.ts';
import { readCommandCalls } from '../../support/redisReadCalls.ts';

// Sentinel over TLS, as managed Redis offerings run it: a primary, a replica
// and three sentinels that speak only TLS (clients, replication, and the
// sentinels' own connections). The daemon finds the primary through the
// sentinels with `redis.tls` alone (redis:// sentinel URLs: one TLS setting
// for sentinels and data nodes), readers read the replica and the primary
// with rediss:// sentinel URLs and the CA, and a client without the CA is
// refused with an error that names the certificate.

type User = Record<string, unknown>;

const USERS = 40;
const KEY_PREFIX = 'tctlssentinel:';
const CHANNEL = 'tc_tls_sentinel';

let certificates: TestCertificates;
let topology: PrivateRedisSentinel;
let db: TestDatabase;
let config: TablecacheConfig;
let removeConfig: () => void = () => {};
let daemon: DaemonProcess | undefined;
const readers: TableReader<User>[] = [];

/** The sentinels' URLs as `redis://`: the daemon's TLS comes from `redis.tls`. */
const plainSchemeUrls = () => topology.sentinelUrls.map((url) => url.replace(/^rediss:/, 'redis:'));

/** `INFO commandstats` calls of the reader's read commands on the data node on `port`, over TLS. */
async function readCalls(port: number): Promise<number> {
  const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, tls: { ca: readFileSync(certificates.caFile) } });
  try {
    await node.connect();
    return readCommandCalls(await node.info('commandstats'));
  } finally {
    node.disconnect();
  }
}

async function openUsers(readFrom: 'primary' | 'replica'): Promise<TableReader<User>> {
  const reader = await openReader<User>({
    sentinel: { sentinels: topology.sentinelUrls, name: topology.name }, readFrom, tls: { ca: readFileSync(certificates.caFile) },
    table: 'users', keyPrefix: KEY_PREFIX, timeoutMs: 5_000,
  });
  readers.push(reader);
  return reader;
}

beforeAll(async () => {
  certificates = createTestCertificates();
  [topology, db] = await Promise.all([PrivateRedisSentinel.start({ replicas: 1, tls: certificates }), createTestDatabase('redis_tls_sentinel')]);
  await createUsers(db.pool, USERS, 5);
  let file: string;
  ({ file, config, remove: removeConfig } = writeSeedConfig({
    postgresUrl: db.url, redisUrl: '', keyPrefix: KEY_PREFIX, channel: CHANNEL,
    redis: { url: undefined, sentinel: { sentinels: plainSchemeUrls(), name: topology.name }, tls: { caFile: certificates.caFile } },
  }));
  await installConfigTriggers(db.pool, config);
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 1, 15_000);
}, 60_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await Promise.all(readers.map((reader) => reader.close()));
  await topology?.stop();
  removeConfig();
  certificates?.remove();
  await db?.drop();
});

describe('Redis Sentinel over TLS', () => {
  it("takes the daemon's load and refreshes through TLS sentinels, read over TLS from the replica and from the primary", async () => {
    const primaryPort = await topology.primaryPort();
    const [replicaPort] = topology.dataPorts.filter((port) => port !== primaryPort);
    const fromReplica = await openUsers('replica');
    // The replica's first sync may come after the load: wait for it there, over TLS replication.
    await waitFor('the load on the replica', async () => (await fromReplica.info()).recordCount === USERS, { timeoutMs: 10_000 });
    const before = await readCalls(replicaPort!);
    expect((await fromReplica.get(7))?.['user_name']).toBe('User 7');
    expect(await readCalls(replicaPort!)).toBeGreaterThan(before);

    const fromPrimary = await openUsers('primary');
    const primaryBefore = await readCalls(primaryPort);
    expect((await fromPrimary.info()).recordCount).toBe(USERS);
    expect(await readCalls(primaryPort)).toBeGreaterThan(primaryBefore);

    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Via sentinels' WHERE user_id = 3`);
    for (const reader of [fromPrimary, fromReplica]) {
      await waitFor('user 3 renamed, read over TLS', async () => (await reader.get(3))?.['user_name'] === 'Via sentinels', { timeoutMs: 10_000 });
    }
  });

  it('verify compares through the TLS sentinels with the same settings', async () => {
    const [users] = await verifyCache(config);
    expect(users).toMatchObject({ equal: true, postgresRecords: USERS, redisRecords: USERS });
  });

  it('refuses a reader, verify and the daemon without the CA at once, naming the certificate, not "all sentinels are unreachable"', async () => {
    const started = performance.now();
    const readerError = await openReader({ sentinel: { sentinels: topology.sentinelUrls, name: topology.name }, table: 'users', keyPrefix: KEY_PREFIX, timeoutMs: 10_000 })
      .catch((error: unknown) => error);
    expect(readerError).toMatchObject({ code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/TLS with sentinel 127\.0\.0\.1:\d+ failed: .*certificate.*Check `tls`/) });
    // Refused once the sentinels failed, not after timeoutMs.
    expect(performance.now() - started).toBeLessThan(5_000);

    const withoutCa = parseConfig({
      postgres: { url: db.url },
      redis: { sentinel: { sentinels: plainSchemeUrls(), name: topology.name }, keyPrefix: KEY_PREFIX, tls: true },
      triggers: { channel: CHANNEL },
      tables: { users: { query: config.tables[0]!.query!, primaryKey: 'user_id', sources: { [`${SCHEMA}.users`]: { key: 'user_id' } } } },
    }, { file: config.file });
    await expect(verifyCache(withoutCa)).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/certificate.*Check redis\.tls/) });
    await expect(connectRedisWhenReachable(withoutCa.redis, 'tls-sentinel-test', { logger: silentLogger })).rejects.toMatchObject({
      code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/TLS with sentinel .*certificate/),
    });
  });
});
