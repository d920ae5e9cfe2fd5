import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every module tablecache/client loads, following relative imports from its index; bare package names are collected. */
function importGraph(entry: string): { modules: string[]; packages: Set<string> } {
  const modules = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (modules.has(file)) return;
    modules.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:import|export)[^'"]*?from\s+'([^']+)'/g)) {
      if (specifier!.startsWith('.')) visit(resolve(dirname(file), specifier!));
      else packages.add(specifier!.startsWith('node:') ? specifier! : specifier!.split('/')[0]!);
    }
  };
  visit(entry);
  return { modules: [...modules].map((file) => relative(root, file)).sort(), packages };
}

describe('tablecache/client', () => {
  it('loads neither pg nor the writer: only ioredis, msgpackr, lru-cache (the near-cache), the key layout, codec, Redis addresses and the Sentinel TLS probe, and the core types', () => {
    const { modules, packages } = importGraph(resolve(root, 'lib/client/index.ts'));
    expect([...packages].filter((name) => !name.startsWith('node:')).sort()).toEqual(['ioredis', 'lru-cache', 'msgpackr']);
    expect(modules.filter((file) => !file.startsWith('lib/client/') && !file.startsWith('lib/core/'))).toEqual([
      'lib/redis/clusterNatMap.ts',
      'lib/redis/coverageFormat.ts',
      'lib/redis/keyLayout.ts',
      'lib/redis/luaScript.ts',
      'lib/redis/recordCodec.ts',
      'lib/redis/redisAddress.ts',
      'lib/redis/redisErrors.ts',
      'lib/redis/scripts/luaSources.ts',
      'lib/redis/scripts/readerScripts.ts',
      'lib/redis/sentinelTlsProbe.ts',
    ]);
    expect(modules.filter((file) => file.startsWith('lib/core/'))).not.toContain('lib/core/cachedTable.ts');
  });
});
