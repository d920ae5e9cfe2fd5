import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importModule } from '../../../daemon/config/moduleImport.ts';

const directory = mkdtempSync(path.join(tmpdir(), 'tablecache-module-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** What Node throws for `import('tsx/esm/api')` where tsx is not installed. */
function tsxNotInstalled(): Promise<never> {
  return Promise.reject(Object.assign(new Error("Cannot find package 'tsx' imported from /app/node_modules/tablecache/dist/daemon/config/moduleImport.js"), { code: 'ERR_MODULE_NOT_FOUND' }));
}

describe('importModule', () => {
  it('says in one line to install tsx, or which formats need no tsx, when a TypeScript configuration cannot be compiled', async () => {
    const file = path.join(directory, 'tablecache.config.cts');
    writeFileSync(file, 'export default {};');
    const error = await importModule(file, { what: 'the configuration', loadTypeScriptImporter: tsxNotInstalled }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TC_CONFIG_INVALID', file });
    expect((error as Error).message).toBe(
      `Cannot load the configuration ${file}: install tsx (npm i -D tsx) to load a TypeScript configuration, or use .js/.mjs/.yaml.`,
    );
  });

  it('loads a JS module without tsx', async () => {
    const file = path.join(directory, 'tablecache.config.mjs');
    writeFileSync(file, 'export default { answer: 42 };');
    const module = await importModule(file, { what: 'the configuration', loadTypeScriptImporter: tsxNotInstalled });
    expect(module.default).toEqual({ answer: 42 });
  });

  it('compiles a TypeScript module outside a "type": "module" folder and returns its exports', async () => {
    const file = path.join(directory, 'typed.ts');
    writeFileSync(file, 'const answer: number = 42;\nexport default { answer };\nexport const named = "yes";');
    const module = await importModule(file, { what: 'the configuration' });
    expect(module.default).toEqual({ answer: 42 });
    expect(module.named).toBe('yes');
  });
});
