import { readFileSync } from 'node:fs';

/**
 * This package's version (`tablecache --version`), read from package.json
 * next to the sources. The build (`scripts/build.ts`) replaces the compiled
 * module with the version as a constant: dist/ has no package.json at this
 * relative place, and a constant costs no file read at start-up.
 */
export const packageVersion: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
