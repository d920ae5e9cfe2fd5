import { describe, expect, it } from 'vitest';
import { ConfigError, logicalCaptureSpecFromConfig, parseConfig } from '../../../daemon/config/index.ts';
import { defaultCaptureName } from '../../../sql-triggers/logicalCaptureSpec.ts';

const base = {
  postgres: { url: 'postgres://localhost/app' },
  redis: { url: 'redis://localhost' },
  tables: { users: { query: 'SELECT 1', primaryKey: 'user_id', sources: { users: { key: 'user_id', columns: ['name'] }, cities: { key: 'city_id', match: 'city_id' } } } },
};

function parse(extra: Record<string, unknown>) {
  return parseConfig({ ...base, ...extra }, { file: 'capture.yaml', env: {} });
}

describe('capture configuration', () => {
  it('defaults to triggers, with slot and publication named after the channel and key prefix', () => {
    expect(parse({}).capture).toEqual({ method: 'triggers', slot: 'tablecache_changes_tablecache', publication: 'tablecache_changes_tablecache' });
    const other = parse({ capture: { method: 'logical' }, triggers: { channel: 'shop' }, redis: { url: 'redis://localhost', keyPrefix: 'shop2:' } });
    expect(other.capture).toEqual({ method: 'logical', slot: 'shop_shop2', publication: 'shop_shop2' });
  });

  it('gives key prefixes that fold to the same text names of their own', () => {
    const names = ['App:', 'app:', 'a:b:', 'a_b:', 'a-very-long-key-prefix:'].map((prefix) => defaultCaptureName('tablecache_changes', prefix));
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z0-9_]{1,63}$/);
  });

  it('takes slot and publication names and rejects ones Postgres would not', () => {
    expect(parse({ capture: { method: 'logical', slot: 'cache_slot', publication: 'cache_pub' } }).capture).toEqual({
      method: 'logical',
      slot: 'cache_slot',
      publication: 'cache_pub',
    });
    expect(() => parse({ capture: { method: 'logical', slot: 'Cache-Slot' } })).toThrow(
      /capture\.slot: Replication slot name "Cache-Slot" is not allowed: Postgres takes lower-case letters, digits and _ only/,
    );
    expect(() => parse({ capture: { method: 'wal' } })).toThrow(ConfigError);
    expect(() => parse({ capture: { method: 'wal' } })).toThrow(/capture\.method: expected "triggers" .* or "logical"/);
    expect(() => parse({ capture: { slots: 'x' } })).toThrow(/unknown key "slots" \(did you mean "slot"\?\)/);
  });

  it('resolves the logical capture spec: slot, publication and each source table once', () => {
    const config = parse({ capture: { method: 'logical' } });
    expect(logicalCaptureSpecFromConfig(config)).toEqual({
      slot: 'tablecache_changes_tablecache',
      publication: 'tablecache_changes_tablecache',
      sources: [
        { schema: 'public', table: 'users', keyColumns: ['user_id'], columns: ['name'] },
        { schema: 'public', table: 'cities', keyColumns: ['city_id'] },
      ],
      // A partition truncated alone is not published: its TRUNCATE trigger sends a message on the daemon's channel.
      partitionTruncate: { schema: 'tablecache', channel: 'tablecache_changes' },
    });
  });
});
