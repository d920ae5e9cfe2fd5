import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../../daemon/config/index.ts';

const directory = mkdtempSync(path.join(tmpdir(), 'tablecache-config-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(directory, name);
  writeFileSync(file, text);
  return file;
}

const env = { TABLECACHE_POSTGRES_URL: 'postgres://app:s3cret@db:5432/app', TABLECACHE_REDIS_URL: 'redis://cache:6379' };

const seedYaml = `
postgres: { url: "\${TABLECACHE_POSTGRES_URL}" }
redis: { url: "\${TABLECACHE_REDIS_URL}" }
tables:
  users:
    query: |
      SELECT uc.*, u.name AS user_name, u.nickname AS user_nickname, c.name AS city_name
      FROM users u JOIN users_cities uc USING (user_id) JOIN cities c USING (city_id)
    primaryKey: user_id
    sources:
      users:        { key: user_id }
      users_cities: { key: user_id }
      cities:       { key: city_id, match: city_id }
`;

function minimal(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    postgres: { url: 'postgres://localhost/app' },
    redis: { url: 'redis://localhost:6379' },
    tables: { users: { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } },
    ...overrides,
  };
}

async function configError(promise: Promise<unknown> | (() => unknown)): Promise<ConfigError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('TC_CONFIG_INVALID');
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('reads the seed deployment from YAML, with environment values, parsed names and every default', async () => {
    const config = await loadConfig(write('seed.yaml', seedYaml), { env });
    expect(config.postgres).toEqual({ url: env.TABLECACHE_POSTGRES_URL, listenUrl: env.TABLECACHE_POSTGRES_URL });
    expect(config.redis).toEqual({ url: 'redis://cache:6379', keyPrefix: 'tablecache:', tls: false });
    expect(config.triggers).toEqual({
      schema: 'tablecache',
      channel: 'tablecache_changes',
      maxKeysPerStatement: 5000,
      maxNotificationsPerStatement: 16,
      maxQueueUsage: 0.5,
    });
    expect(config.daemon).toEqual({ http: { host: '127.0.0.1', port: 9464 }, batchWindowMs: 0, maxBatchKeys: 10_000, minReloadIntervalMs: 5_000, verifySenders: false, leaseTtlMs: 5_000, captureCheckIntervalMs: 5_000, refreshTimeoutMs: 30_000, loadTimeoutMs: 300_000, maxLagMs: 30_000, logLevel: 'info' });
    const [users] = config.tables;
    expect(users).toMatchObject({ name: 'users', primaryKey: ['user_id'], configPath: 'tables.users' });
    expect(users!.sources).toEqual([
      { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users' },
      { name: 'public.users_cities', schema: 'public', table: 'users_cities', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.users_cities' },
      { name: 'public.cities', schema: 'public', table: 'cities', key: ['city_id'], match: ['city_id'], configPath: 'tables.users.sources.cities' },
    ]);
  });

  it('reads JSON, and a TS module exporting defineConfig with an indexes factory', async () => {
    const fromJson = await loadConfig(write('plain.json', JSON.stringify(minimal())), { env });
    expect(fromJson.tables[0]!.sources[0]!.name).toBe('public.users');
    const module = write(
      'tablecache.config.ts',
      `import { defineConfig } from ${JSON.stringify(path.resolve('daemon/config/index.ts'))};
       const indexes = () => { throw new Error('not called by the loader'); };
       export default defineConfig({
         postgres: { url: '\${TABLECACHE_POSTGRES_URL}' },
         redis: { url: 'redis://localhost', tls: { rejectUnauthorized: false } },
         tables: { users: { primaryKey: ['user_id'], indexes, sources: { 'App."Users"': { key: 'user_id', columns: ['name'] } } } },
       });`,
    );
    const fromModule = await loadConfig(module, { env });
    expect(fromModule.postgres.url).toBe(env.TABLECACHE_POSTGRES_URL);
    expect(fromModule.redis.tls).toEqual({ rejectUnauthorized: false });
    expect(typeof fromModule.tables[0]!.indexes).toBe('function');
    expect(fromModule.tables[0]!.sources[0]).toMatchObject({ name: 'app."Users"', schema: 'app', table: 'Users', columns: ['name'] });
  });

  it('names the missing environment variable and where it is used; ${VAR:-default} and $${ work', async () => {
    const error = await configError(loadConfig(write('missing-env.yaml', seedYaml), { env: { TABLECACHE_REDIS_URL: 'redis://x' } }));
    expect(error.message).toMatch(/postgres\.url: environment variable TABLECACHE_POSTGRES_URL is not set/);
    const config = parseConfig(
      minimal({ postgres: { url: '${PG:-postgres://fallback/db}' }, redis: { url: 'redis://h', password: 'p$${x}' } }),
      { file: 'inline.yaml', env: {} },
    );
    expect(config.postgres.url).toBe('postgres://fallback/db');
    expect(config.redis.password).toBe('p${x}');
  });

  it('lists every bad key with its path and what was expected', async () => {
    const error = await configError(() =>
      parseConfig(
        {
          postgres: { url: 'mysql://nope' },
          redis: { url: 'redis://h', tls: 'yes' },
          daemon: { http: { port: 70000 } },
          tables: {
            users: { query: 'SELECT 1', primarykey: 'user_id', sources: { users: { key: 3 } } },
            orders: { primaryKey: 'id', sources: {} },
          },
        },
        { file: 'bad.yaml', env: {} },
      ),
    );
    const lines = error.message.split('\n');
    expect(lines[0]).toMatch(/^Invalid configuration in .*bad\.yaml:$/);
    expect(error.message).toContain('postgres.url: expected a URL starting with postgres:// or postgresql://');
    expect(error.message).toContain('redis.tls: expected true, false, or { caFile, certFile, keyFile, rejectUnauthorized, servername }');
    expect(error.message).toContain('daemon.http.port: expected an integer from 0 to 65535');
    expect(error.message).toContain('tables.users: unknown key "primarykey" (did you mean "primaryKey"?)');
    expect(error.message).toContain('tables.users.primaryKey: missing: expected a column name or a non-empty list of column names');
    expect(error.message).toContain('tables.users.sources.users.key: expected a column name or a non-empty list of column names');
    expect(error.message).toContain('tables.orders.sources: expected at least one source table');
    expect(error.message).toContain('tables.orders: expected query, module or indexes');
  });

  it('takes redis.waitReplicas (with waitTimeoutMs defaulting to 1000) and leaves both out at 0', async () => {
    const waiting = parseConfig(minimal({ redis: { url: 'redis://h', waitReplicas: '2' } }), { file: 'x.yaml', env: {} });
    expect(waiting.redis).toMatchObject({ waitReplicas: 2, waitTimeoutMs: 1_000 });
    expect(parseConfig(minimal({ redis: { url: 'redis://h', waitReplicas: 0 } }), { file: 'x.yaml', env: {} }).redis).not.toHaveProperty('waitReplicas');
    const bad = await configError(() => parseConfig(minimal({ redis: { url: 'redis://h', waitReplicas: -1, waitTimeoutMs: 0 } }), { file: 'x.yaml', env: {} }));
    expect(bad.message).toContain('redis.waitReplicas: expected an integer from 0 to 100');
    expect(bad.message).toContain('redis.waitTimeoutMs: expected an integer from 1 to 60000');
  });

  it("takes a table's hashTag (where its keys live) and refuses one with braces", async () => {
    const table = { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } };
    const placed = parseConfig(minimal({ tables: { users: { ...table, hashTag: 'hot-a' }, orders: table } }), { file: 'x.yaml', env: {} });
    expect(placed.tables.map((t) => [t.name, t.hashTag])).toEqual([['users', 'hot-a'], ['orders', undefined]]);
    const bad = await configError(() => parseConfig(minimal({ tables: { users: { ...table, hashTag: 'a}b' } } }), { file: 'x.yaml', env: {} }));
    expect(bad.message).toContain('tables.users.hashTag: the hash tag "a}b" contains "{" or "}"');
  });

  it('takes a Redis Cluster or Sentinel instead of redis.url, and exactly one of the three', async () => {
    const cluster = parseConfig(
      minimal({ redis: { cluster: { nodes: ['redis://a:7000', 'redis://b:7001'], natMap: { '10.0.0.1:7000': 'a:7000' }, scaleReads: 'slave' }, password: 'p' } }),
      { file: 'x.yaml', env: {} },
    );
    expect(cluster.redis).toEqual({
      cluster: { nodes: ['redis://a:7000', 'redis://b:7001'], natMap: { '10.0.0.1:7000': 'a:7000' }, scaleReads: 'slave' },
      keyPrefix: 'tablecache:',
      password: 'p',
      tls: false,
    });
    // natMap takes the reader's shape too: a value may be { host, port }.
    const natMap = { '10.0.0.1:7000': 'a:7000', '10.0.0.2:7001': { host: 'b', port: 7001 } };
    expect(parseConfig(minimal({ redis: { cluster: { nodes: ['redis://a:7000'], natMap } } }), { file: 'x.yaml', env: {} }).redis.cluster?.natMap).toEqual(natMap);
    const sentinel = parseConfig(minimal({ redis: { sentinel: { sentinels: ['redis://s1:26379'], name: 'cache', sentinelPassword: 's' } } }), { file: 'x.yaml', env: {} });
    expect(sentinel.redis.sentinel).toEqual({ sentinels: ['redis://s1:26379'], name: 'cache', sentinelPassword: 's' });
    // redis.tls applies to the sentinels too; tls: false keeps them plain, which a rediss:// sentinel URL contradicts.
    const plainSentinels = parseConfig(minimal({ redis: { sentinel: { sentinels: ['redis://s1:26379'], name: 'cache', tls: false }, tls: true } }), { file: 'x.yaml', env: {} });
    expect(plainSentinels.redis.sentinel).toEqual({ sentinels: ['redis://s1:26379'], name: 'cache', tls: false });
    const contradiction = await configError(() => parseConfig(minimal({ redis: { sentinel: { sentinels: ['rediss://s1:26379'], name: 'cache', tls: false } } }), { file: 'x.yaml', env: {} }));
    expect(contradiction.message).toContain('redis.sentinel: tls: false keeps the sentinel connections plain, but a sentinel URL is rediss://');

    const both = await configError(() => parseConfig(minimal({ redis: { url: 'redis://h', cluster: { nodes: ['redis://a:7000'] } } }), { file: 'x.yaml', env: {} }));
    expect(both.message).toContain('redis: expected exactly one of url, cluster and sentinel, got url and cluster: keep the one that describes your Redis and remove the other');
    const none = await configError(() => parseConfig(minimal({ redis: { keyPrefix: 'app:' } }), { file: 'x.yaml', env: {} }));
    expect(none.message).toContain('redis: expected where Redis is: url');
    const bad = await configError(() =>
      parseConfig(minimal({ redis: { cluster: { nodes: [], natMap: { a: 'b:1' } }, sentinel: { sentinels: ['http://s'], role: 'primary' } } }), { file: 'x.yaml', env: {} }),
    );
    expect(bad.message).toContain('redis.cluster.nodes: expected at least one node URL');
    expect(bad.message).toContain('redis.cluster.natMap.a: expected a map of "host:port" as the cluster announces a node');
    expect(bad.message).toContain('redis.sentinel.sentinels[0]: expected a URL starting with redis:// or rediss://');
    expect(bad.message).toContain('redis.sentinel.name: ');
    expect(bad.message).toContain('redis.sentinel.role: expected master or replica');
  });

  it('refuses a natMap address without a port from 1 to 65535, in either shape', async () => {
    const bad = await configError(() =>
      parseConfig(minimal({ redis: { cluster: { nodes: ['redis://a:7000'], natMap: { '10.0.0.1:7000': 'a:0', '10.0.0.2:7001': { host: 'b', port: 70_000 } } } } }), { file: 'x.yaml', env: {} }),
    );
    expect(bad.message).toContain('redis.cluster.natMap["10.0.0.1:7000"]: expected a port from 1 to 65535');
    expect(bad.message).toContain('redis.cluster.natMap["10.0.0.2:7001"].port: Too big');
    const neither = await configError(() => parseConfig(minimal({ redis: { cluster: { nodes: ['redis://a:7000'], natMap: { '10.0.0.1:7000': 7000 } } } }), { file: 'x.yaml', env: {} }));
    expect(neither.message).toContain('redis.cluster.natMap["10.0.0.1:7000"]: expected "host:port" or { host, port }');
  });

  it('accepts numbers given as strings by ${VAR} substitution', () => {
    const config = parseConfig(minimal({ daemon: { http: { port: '${PORT}' } } }), { file: 'x.yaml', env: { PORT: '8080' } });
    expect(config.daemon.http.port).toBe(8080);
  });

  it('checks that key and match pair up, that match and resolve exclude each other, and that a module exists', async () => {
    const error = await configError(() =>
      parseConfig(
        minimal({
          tables: {
            users: {
              query: 'SELECT 1',
              primaryKey: ['user_id', 'city_id'],
              sources: {
                users: { key: 'user_id' },
                cities: { key: 'city_id', match: 'city_id', resolve: 'SELECT 1' },
                '"bad name': { key: 'id' },
              },
              module: './missing-indexes.ts',
            },
          },
        }),
        { file: path.join(directory, 'pairs.yaml'), env: {} },
      ),
    );
    expect(error.message).toContain('tables.users.sources.cities: give either match or resolve, not both');
    const normalized = await configError(() =>
      parseConfig(
        minimal({
          tables: {
            users: {
              query: 'SELECT 1',
              primaryKey: ['user_id', 'city_id'],
              sources: { users: { key: 'user_id' }, '"bad name': { key: 'id', resolve: 'SELECT 1' } },
              module: './missing-indexes.ts',
            },
          },
        }),
        { file: path.join(directory, 'pairs.yaml'), env: {} },
      ),
    );
    expect(normalized.message).toContain('tables.users.sources.users: key names 1 column(s) but primaryKey (the default of match) names 2');
    expect(normalized.message).toContain('tables.users.sources["\\"bad name"]: Table name "\\"bad name" has an unterminated quoted identifier');
    expect(normalized.message).toContain(`tables.users.module: module "./missing-indexes.ts" does not exist (looked for ${path.join(directory, 'missing-indexes.ts')})`);
  });

  it('refuses a trigger schema that is not a plain name and two sources naming one table', async () => {
    const error = await configError(() =>
      parseConfig(
        minimal({
          triggers: { schema: 'Bad;Schema' },
          tables: { users: { query: 'SELECT 1', primaryKey: 'user_id', sources: { users: { key: 'user_id' }, 'public.USERS': { key: 'user_id' } } } },
        }),
        { file: 'dup.yaml', env: {} },
      ),
    );
    expect(error.message).toContain('triggers.schema: Trigger schema "Bad;Schema" is not allowed');
    expect(error.message).toContain('sources tables.users.sources.users and tables.users.sources["public.USERS"] both name table public.users');
  });

  it('says which file is missing, malformed, or of an unknown type', async () => {
    expect((await configError(loadConfig(path.join(directory, 'nope.yaml')))).message).toMatch(/nope\.yaml does not exist/);
    expect((await configError(loadConfig(write('broken.yaml', 'tables: [unclosed')))).message).toMatch(/broken\.yaml is not valid YAML/);
    expect((await configError(loadConfig(write('broken.json', '{')))).message).toMatch(/broken\.json is not valid JSON/);
    expect((await configError(loadConfig(write('config.toml', '')))).message).toMatch(/unsupported configuration file type "\.toml"/);
    expect((await configError(loadConfig(write('empty.mjs', 'export const nothing = 1;')))).message).toMatch(/exports no configuration/);
  });
});
