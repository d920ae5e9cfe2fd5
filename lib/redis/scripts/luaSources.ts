import { readFileSync } from 'node:fs';

/** A line `-- #include <name>` in a script: replaced by `<name>.lua` (Redis runs one text per script, with no modules). */
const INCLUDE_LINE = /^-- #include (\w+)$/gm;

/**
 * `source` with each `-- #include <name>` line replaced by `read(name)`,
 * itself expanded: how scripts share Lua (a function several scripts call)
 * without copies in the files. The build expands with the same function.
 */
export function expandLuaIncludes(source: string, read: (name: string) => string, including: readonly string[] = []): string {
  return source.replace(INCLUDE_LINE, (_line, name: string) => {
    if (including.includes(name)) throw new Error(`Lua include cycle: ${[...including, name].join(' -> ')}`);
    return expandLuaIncludes(read(name), read, [...including, name]).replace(/\n$/, '');
  });
}

function readScriptFile(name: string): string {
  return readFileSync(new URL(`./${name}.lua`, import.meta.url), 'utf8');
}

/**
 * The source text of `<name>.lua` in this folder, includes expanded.
 *
 * Running from the TypeScript sources (tests, tsx), this reads the files next
 * to this module. The build (`scripts/build.ts`) replaces the compiled module
 * with one that holds every script as a string, so the published package
 * reads no file at run time: a bundler that moves the code elsewhere (and
 * leaves the .lua files behind) still works, and a reader-only bundle needs
 * no `node:fs`.
 */
export function luaSource(name: string): string {
  return expandLuaIncludes(readScriptFile(name), readScriptFile, [name]);
}
