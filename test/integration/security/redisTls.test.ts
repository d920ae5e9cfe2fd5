import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { createTestCertificates, startTlsRedis, type TestCertificates, type TlsRedis } from '../../support/tlsRedis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { createUsers, DaemonProcess, installConfigTriggers, SCHEMA, writeSeedConfig } from '../daemon/daemonHarness.ts';

type User = Record<string, unknown>;

const USERS = 50;
const CHANNEL = 'tc_redis_tls';
const KEY_PREFIX = 'tablecache:';
const ADMIN_PASSWORD = randomBytes(12).toString('hex');
const DAEMON_USER = 'tc_daemon';
const DAEMON_PASSWORD = randomBytes(12).toString('hex');
// The configuration takes the password from the environment, as an operator's would.
const PASSWORD_VARIABLE = 'TC_TLS_TEST_REDIS_PASSWORD';

let db: TestDatabase;
let certificates: TestCertificates;
let otherCa: TestCertificates;
let server: TlsRedis;
let admin: Redis;
let config: TablecacheConfig;
let removeConfig: () => void;
let daemon: DaemonProcess | undefined;
let reader: TableReader<User> | undefined;

/** The configuration's `redis.tls`: trust the test CA, show the test certificate. */
function tlsSettings(): Record<string, unknown> {
  return { caFile: certificates.caFile, certFile: certificates.certFile, keyFile: certificates.keyFile };
}

/** The same as Node TLS options, for connections the test opens. */
function clientTls(ca = certificates.caFile) {
  return { ca: readFileSync(ca), cert: readFileSync(certificates.certFile), key: readFileSync(certificates.keyFile) };
}

function tlsUrl(user: string, password: string): string {
  return `rediss://${user}:${password}@localhost:${server.port}`;
}

beforeAll(async () => {
  db = await createTestDatabase('redis_tls');
  await createUsers(db.pool, USERS, 5);
  certificates = createTestCertificates();
  otherCa = createTestCertificates();
  // Clients must show a certificate the CA signed (mutual TLS): the server's own serves as the clients' too.
  server = await startTlsRedis(certificates, ['--requirepass', ADMIN_PASSWORD, '--tls-auth-clients', 'yes']);
  admin = new Redis(tlsUrl('default', ADMIN_PASSWORD), { lazyConnect: true, tls: clientTls() });
  await admin.connect();
  await admin.call('ACL', 'SETUSER', DAEMON_USER, 'on', `>${DAEMON_PASSWORD}`, '~{tablecache:*', '&{tablecache:*', '+@all');
  process.env[PASSWORD_VARIABLE] = DAEMON_PASSWORD;
  let file: string;
  ({ file, config, remove: removeConfig } = writeSeedConfig({
    postgresUrl: db.url,
    redisUrl: `rediss://localhost:${server.port}`,
    keyPrefix: KEY_PREFIX,
    channel: CHANNEL,
    redis: { username: DAEMON_USER, password: `\${${PASSWORD_VARIABLE}}`, tls: tlsSettings() },
  }));
  await installConfigTriggers(db.pool, config);
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 1, 15_000);
}, 60_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await reader?.close();
  admin?.disconnect();
  await server?.stop();
  removeConfig?.();
  certificates?.remove();
  otherCa?.remove();
  await db?.drop();
});

describe('Redis with AUTH and TLS (a self-signed CA)', () => {
  it('the daemon loads and refreshes over TLS as an ACL user whose password comes from ${VAR}', async () => {
    expect(config.redis).toMatchObject({ username: DAEMON_USER, password: DAEMON_PASSWORD, tls: { ...tlsSettings(), rejectUnauthorized: true } });
    const clients = (await admin.call('CLIENT', 'LIST')) as string;
    expect(clients).toMatch(new RegExp(`name=tablecache-daemon .*user=${DAEMON_USER}`));
    reader = await openReader<User>({ url: tlsUrl(DAEMON_USER, DAEMON_PASSWORD), tls: clientTls(), table: 'users', keyPrefix: KEY_PREFIX });
    expect((await reader.info()).recordCount).toBe(USERS);
    await db.pool.query(`UPDATE ${SCHEMA}.users SET name = 'Over TLS' WHERE user_id = 5`);
    await waitFor('user 5 renamed, read over TLS', async () => (await reader!.get(5))?.['user_name'] === 'Over TLS', { timeoutMs: 10_000 });
  });

  it('verify compares over TLS with the same settings', async () => {
    const [verified] = await verifyCache(config);
    expect(verified).toMatchObject({ equal: true, postgresRecords: USERS, redisRecords: USERS });
  });

  it('refuses a server whose certificate another CA signed, with a typed error naming the certificate problem, not a hang', async () => {
    const wrongCa = clientTls(otherCa.caFile);
    const readerError = await openReader({ url: tlsUrl(DAEMON_USER, DAEMON_PASSWORD), tls: wrongCa, table: 'users', keyPrefix: KEY_PREFIX }).catch((error: unknown) => error);
    expect(readerError).toMatchObject({ code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/certificate/i) });

    const wrongConfig = parseConfig({ ...rawRedisConfig(), redis: { ...rawRedisConfig().redis, tls: { ...tlsSettings(), caFile: otherCa.caFile } } }, { file: config.file });
    const verifyError = await verifyCache(wrongConfig).catch((error: unknown) => error);
    expect(verifyError).toMatchObject({ code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/certificate/i) });
    expect(String((verifyError as Error).message)).not.toContain(DAEMON_PASSWORD);
  });

  it('refuses a client without a certificate, and a configuration with a certificate but no key', async () => {
    const { cert: _cert, key: _key, ...caOnly } = clientTls();
    await expect(openReader({ url: tlsUrl(DAEMON_USER, DAEMON_PASSWORD), tls: caOnly, table: 'users', keyPrefix: KEY_PREFIX })).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED' });
    const { keyFile: _keyFile, ...withoutKey } = tlsSettings();
    expect(() => parseConfig({ ...rawRedisConfig(), redis: { ...rawRedisConfig().redis, tls: withoutKey } }, { file: config.file })).toThrow(
      /redis\.tls: give certFile and keyFile together/,
    );
  });

  it('refuses a wrong password with a typed error', async () => {
    const wrongPassword = parseConfig({ ...rawRedisConfig(), redis: { ...rawRedisConfig().redis, password: 'not-the-password' } }, { file: config.file });
    await expect(verifyCache(wrongPassword)).rejects.toMatchObject({ code: 'TC_CONNECTION_FAILED', message: expect.stringMatching(/WRONGPASS/) });
  });
});

/** The test's configuration as a file would hold it, to vary one setting. */
function rawRedisConfig() {
  return {
    postgres: { url: config.postgres.url },
    redis: { url: config.redis.url, keyPrefix: KEY_PREFIX, username: DAEMON_USER, password: DAEMON_PASSWORD, tls: tlsSettings() },
    triggers: { channel: CHANNEL },
    tables: { users: { query: config.tables[0]!.query!, primaryKey: 'user_id', sources: { [`${SCHEMA}.users`]: { key: 'user_id' } } } },
  };
}
