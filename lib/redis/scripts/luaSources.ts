import { readFileSync } from 'node:fs';

/**
 * The source text of `<name>.lua` in this folder.
 *
 * Running from the TypeScript sources (tests, tsx), this reads the file next
 * to this module. The build (`scripts/build.ts`) replaces the compiled module
 * with one that holds every script as a string, so the published package
 * reads no file at run time: a bundler that moves the code elsewhere (and
 * leaves the .lua files behind) still works, and a reader-only bundle needs
 * no `node:fs`.
 */
export function luaSource(name: string): string {
  return readFileSync(new URL(`./${name}.lua`, import.meta.url), 'utf8');
}
