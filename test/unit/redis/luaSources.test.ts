import { describe, expect, it } from 'vitest';
import { expandLuaIncludes, luaSource } from '../../../lib/redis/scripts/luaSources.ts';

describe('Lua includes', () => {
  it('replaces each include line by the named source, expanded in turn', () => {
    const files: Record<string, string> = { a: 'local a = 1\n-- #include b\n', b: 'local b = 2\n' };
    expect(expandLuaIncludes('-- #include a\nreturn a + b\n', (name) => files[name]!)).toBe('local a = 1\nlocal b = 2\nreturn a + b\n');
  });

  it('refuses an include cycle, naming it', () => {
    const files: Record<string, string> = { a: '-- #include b\n', b: '-- #include a\n' };
    expect(() => expandLuaIncludes('-- #include a\n', (name) => files[name]!)).toThrow('Lua include cycle: a -> b -> a');
  });

  it('gives every script that publishes a step the shared announce function, and leaves no include line behind', () => {
    for (const name of ['applyChanges', 'deleteRecords', 'mergeStep', 'publishGeneration', 'putRecords']) {
      const source = luaSource(name);
      expect(source).toContain('local function announce(step, fields)');
      expect(source).not.toMatch(/^-- #include/m);
    }
  });
});
