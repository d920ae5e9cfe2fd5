import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../daemon/config/index.ts';

function withDaemon(daemon: Record<string, unknown>): Record<string, unknown> {
  return {
    postgres: { url: 'postgres://localhost/app' },
    redis: { url: 'redis://localhost:6379' },
    daemon,
    tables: { users: { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } },
  };
}

function configError(daemon: Record<string, unknown>): ConfigError {
  try {
    parseConfig(withDaemon(daemon), { file: 'tablecache.yaml' });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('the settings that bound what notifications cost', () => {
  it('default to one reload per 5 s, a queue bound derived from maxBatchKeys, and no sender check', () => {
    const { daemon } = parseConfig(withDaemon({}), { file: 'tablecache.yaml' });
    expect(daemon).toMatchObject({ minReloadIntervalMs: 5_000, verifySenders: false });
    expect(daemon.maxQueuedKeysPerTable).toBeUndefined();
  });

  it('take values, digit strings included', () => {
    const { daemon } = parseConfig(withDaemon({ minReloadIntervalMs: '0', maxQueuedKeysPerTable: 500, verifySenders: true }), { file: 'tablecache.yaml' });
    expect(daemon).toMatchObject({ minReloadIntervalMs: 0, maxQueuedKeysPerTable: 500, verifySenders: true });
  });

  it('refuse bad values, naming the key', () => {
    expect(configError({ minReloadIntervalMs: -1 }).message).toContain('daemon.minReloadIntervalMs');
    expect(configError({ maxQueuedKeysPerTable: 0 }).message).toContain('daemon.maxQueuedKeysPerTable');
    expect(configError({ verifySenders: 'yes' }).message).toContain('daemon.verifySenders');
  });
});
