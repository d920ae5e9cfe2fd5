import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { openReader } from '../../../lib/client/index.ts';
import { checkConfigAgainstDatabase } from '../../../daemon/config/checkConfigAgainstDatabase.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { triggerSpecFromConfig } from '../../../daemon/config/triggerSpecFromConfig.ts';
import { TablecacheDaemon } from '../../../daemon/tablecacheDaemon.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { installTriggers } from '../../../sql-triggers/installTriggers.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix, withRedis } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';

// What `docker compose up` does, without Docker: the seed SQL the Postgres
// image runs, the trigger install, and the daemon on the compose configuration.
const seedSql = readFileSync(fileURLToPath(new URL('../../../docker/postgres-seed.sql', import.meta.url)), 'utf8');
const configFile = fileURLToPath(new URL('../../../docker/tablecache.yaml', import.meta.url));

let db: TestDatabase;
let config: TablecacheConfig;
let keyPrefix: string;

beforeAll(async () => {
  db = await createTestDatabase('compose');
  await db.pool.query(seedSql);
  keyPrefix = uniqueRedisPrefix('compose');
  const raw = YAML.parse(readFileSync(configFile, 'utf8')) as { redis: Record<string, unknown> };
  raw.redis['keyPrefix'] = keyPrefix;
  config = parseConfig(raw, { file: configFile, env: { TABLECACHE_POSTGRES_URL: db.url, TABLECACHE_REDIS_URL: testRedisUrl() } });
});

afterAll(async () => {
  await withRedis((redis) => deleteKeysWithPrefix(redis, keyPrefix));
  await db?.drop();
});

describe('the docker compose deployment, run without Docker', () => {
  it('has a configuration that matches the seeded database', async () => {
    const client = await db.pool.connect();
    try {
      await checkConfigAgainstDatabase(client, config);
      await installTriggers(client, triggerSpecFromConfig(config));
    } finally {
      client.release();
    }
  });

  it('caches the seed users and follows a change, with verify clean', async () => {
    await using daemon = await TablecacheDaemon.start(config, { logger: pino({ level: 'silent' }) });
    await waitFor('the daemon to be ready', () => daemon.isReady);
    await using reader = await openReader({ url: testRedisUrl(), table: 'users', keyPrefix });
    expect(await reader.get(1)).toMatchObject({ user_name: 'User 1', city_name: 'City 1' });
    await db.pool.query(`INSERT INTO users (name) VALUES ('User 3') RETURNING user_id`);
    await db.pool.query(`INSERT INTO users_cities (user_id, city_id) VALUES (3, 2)`);
    await waitFor('user 3 in Redis', async () => (await reader.get(3))?.['city_name'] === 'City 2');
    const [result] = await verifyCache(config);
    expect(result).toMatchObject({ equal: true, postgresRecords: 3 });
  });
});
