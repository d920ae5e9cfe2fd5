import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Esbuild from 'esbuild';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix, withRedis } from '../../support/redis.ts';
import { repositoryRoot } from './consumerLockfile.ts';
import { installPackedProject, packRepository, runCommand, type PackedProject, type PackedTarball } from './packedProject.ts';

// The package as a user installs it: `npm pack` (its prepack runs the build),
// then the tarball installed into a temporary project with plain Node, no
// tsx and no TypeScript: one project with the daemon's optional peer
// dependencies serves every check (they run in order), one with none is what a
// service that only reads gets.

const DAEMON_PEERS = ['pg', 'pg-cursor', 'pg-listen', 'zod', 'prom-client', 'pino', 'commander', 'yaml'];
const TYPESCRIPT = path.join(repositoryRoot, 'node_modules/typescript/bin/tsc');
const ESBUILD = path.join(repositoryRoot, 'node_modules/esbuild/lib/main.js');

let tarball: PackedTarball | undefined;
let project: PackedProject | null = null;
let readerProject: PackedProject | null = null;
let skipReason: string | null = null;
let db: TestDatabase;
let keyPrefix: string;
let configFile: string;
/** The consumer's processes get no TABLECACHE_* variables and no NODE_OPTIONS of the test runner. */
const env = { PATH: process.env['PATH'], HOME: process.env['HOME'] };

/** Runs `node file args` in the project; the output must end in one JSON line, which is returned. */
async function runScript(file: string, ...args: string[]): Promise<unknown> {
  const result = await runCommand(process.execPath, [file, ...args], project!.directory, env);
  expect(result.code, `${file} failed:\n${result.stderr}\n${result.stdout}`).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

function requireProject(skip: (note?: string) => never, which: 'consumer' | 'reader-only' = 'consumer'): PackedProject {
  const chosen = which === 'consumer' ? project : readerProject;
  if (chosen === null) skip(`the packed package could not be installed offline: ${skipReason}`);
  return chosen;
}

beforeAll(async () => {
  tarball = await packRepository();
  ({ project, skipReason } = await installPackedProject(tarball, 'consumer', DAEMON_PEERS));
  if (project === null) return;
  ({ project: readerProject, skipReason } = await installPackedProject(tarball, 'reader-only', []));
  if (readerProject === null) return;
  db = await createTestDatabase('package');
  await db.pool.query(`
    CREATE SCHEMA app;
    CREATE TABLE app.items (item_id integer PRIMARY KEY, name text NOT NULL);
    INSERT INTO app.items SELECT i, 'Item ' || i FROM generate_series(1, 20) i;`);
  keyPrefix = uniqueRedisPrefix('package');
  configFile = project.write(
    'tablecache.yaml',
    YAML.stringify({
      postgres: { url: db.url },
      redis: { url: testRedisUrl(), keyPrefix },
      triggers: { schema: 'tablecache', channel: 'tc_package_test' },
      daemon: { batchWindowMs: 1, logLevel: 'warn', http: { port: 0 } },
      tables: { items: { query: 'SELECT * FROM app.items', primaryKey: 'item_id', sources: { 'app.items': { key: 'item_id' } } } },
    }),
  );
}, 300_000);

afterAll(async () => {
  if (keyPrefix) await withRedis((redis) => deleteKeysWithPrefix(redis, keyPrefix));
  await db?.drop();
  tarball?.remove();
});

// tsc and npm take tens of seconds on a loaded 2-core machine.
describe('the packed package, installed into an empty project', { timeout: 300_000 }, () => {
  it('holds the build and no tests, benches or examples; the daemon packages are optional peers, tsx none', ({ skip }) => {
    const { directory } = requireProject(skip);
    const installed = path.join(directory, 'node_modules/tablecache');
    for (const file of ['dist/lib/client/index.js', 'dist/lib/client/index.d.ts', 'dist/lib/client/index.d.ts.map', 'dist/cli/bin.js', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
      expect(existsSync(path.join(installed, file)), file).toBe(true);
    }
    for (const folder of ['test', 'bench', 'examples', 'dist/test']) expect(existsSync(path.join(installed, folder)), folder).toBe(false);
    expect(readFileSync(path.join(installed, 'dist/lib/redis/scripts/luaSources.js'), 'utf8')).toContain('readerGet');
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    expect(Object.keys(manifest['dependencies']!)).not.toEqual(expect.arrayContaining(['pg']));
    expect(Object.keys(manifest['peerDependenciesMeta']!).sort()).toEqual([...DAEMON_PEERS, 'pino-pretty', 'pg-logical-replication'].sort());
    expect(existsSync(path.join(directory, 'node_modules/tsx')), 'tsx installed').toBe(false);
    expect(existsSync(path.join(directory, 'node_modules/typescript')), 'typescript installed').toBe(false);
  });

  it('runs `tablecache --help` and `tablecache triggers sql|install` through npx, with no tsx', async ({ skip }) => {
    const { directory } = requireProject(skip);
    const help = await runCommand('npx', ['--offline', 'tablecache', '--help'], directory, env);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: tablecache');
    // npm installed the bin where npx found it; the rest runs it directly (npx costs a second or more per call).
    const bin = path.join(directory, 'node_modules/.bin/tablecache');
    const version = await runCommand(bin, ['--version'], directory, env);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(path.join(repositoryRoot, 'package.json'), 'utf8')) as { version: string }).version);
    const sql = await runCommand(bin, ['triggers', 'sql', '--config', configFile], directory, env);
    expect(sql.code, sql.stderr).toBe(0);
    expect(sql.stdout).toContain('CREATE');
    const install = await runCommand(bin, ['triggers', 'install', '--config', configFile], directory, env);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('Installed change triggers');
  });

  it('lets a plain Node ESM script run the daemon (tablecache/daemon) and read through tablecache/client and tablecache', async ({ skip }) => {
    const { write } = requireProject(skip);
    const script = write(
      'daemonAndReader.mjs',
      `import { readFileSync } from 'node:fs';
import pg from 'pg';
import YAML from 'yaml';
import { RecordNotFoundError } from 'tablecache';
import { openReader } from 'tablecache/client';
import { startDaemon } from 'tablecache/daemon';

const config = YAML.parse(readFileSync(process.argv[2], 'utf8'));
const daemon = await startDaemon(config);
const deadline = Date.now() + 60_000;
const until = async (what, check) => {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};
await until('the daemon to be ready', () => daemon.readiness().ready);
const reader = await openReader({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, table: 'items' });
const before = await reader.get(7);
const pool = new pg.Pool({ connectionString: config.postgres.url });
await pool.query("UPDATE app.items SET name = 'Changed 7' WHERE item_id = 7");
await until('the change to reach the reader', async () => (await reader.get(7))?.name === 'Changed 7');
await daemon.stop();
await pool.end();
// Readers keep the published table after the daemon stopped.
const after = (await reader.get(7))?.name;
await reader.close();
console.log(JSON.stringify({ before, after, notFound: typeof RecordNotFoundError }));
`,
    );
    expect(await runScript(script, configFile)).toEqual({ before: { item_id: 7, name: 'Item 7' }, after: 'Changed 7', notFound: 'function' });
  });

  it('lets CommonJS require() every entry point (Node >= 20.19 loads the ESM build) and read the table', async ({ skip }) => {
    const { write } = requireProject(skip);
    const script = write(
      'reader.cjs',
      `const { openReader } = require('tablecache/client');
const core = require('tablecache');
const loaded = ['tablecache/postgres', 'tablecache/local', 'tablecache/redis', 'tablecache/config', 'tablecache/daemon'].map((entry) => typeof require(entry));
openReader({ url: process.argv[2], keyPrefix: process.argv[3], table: 'items' }).then(async (reader) => {
  const item = await reader.get(3);
  await reader.close();
  console.log(JSON.stringify({ item, core: typeof core.CachedTable, loaded }));
});
`,
    );
    expect(await runScript(script, testRedisUrl(), keyPrefix)).toEqual({ item: { item_id: 3, name: 'Item 3' }, core: 'function', loaded: Array(5).fill('object') });
  });

  it.for(['node16', 'bundler'])('type-checks a strict TypeScript consumer with moduleResolution %s and skipLibCheck false', async (resolution, { skip }) => {
    const { write, directory } = requireProject(skip);
    write(
      'consumer.ts',
      `import { CachedTable, PrimaryKeyIndexes, TablecacheError } from 'tablecache';
import { openReader, type TableReader } from 'tablecache/client';
import { PostgresAccess } from 'tablecache/postgres';
import { LocalStorageTable } from 'tablecache/local';
import { RedisStorageTable } from 'tablecache/redis';
import { defineConfig } from 'tablecache/config';
import { startDaemon, type RunningDaemon } from 'tablecache/daemon';

interface Item { item_id: number; name: string }
export async function read(url: string): Promise<Item | undefined> {
  const reader: TableReader<Item> = await openReader<Item>({ url, table: 'items' });
  return reader.get(1);
}
export const config = defineConfig({ postgres: { url: 'postgres://x' }, redis: { url: 'redis://x' }, tables: {} });
export const start: (c: typeof config) => Promise<RunningDaemon> = (c) => startDaemon(c);
export const all = [CachedTable, PrimaryKeyIndexes, TablecacheError, PostgresAccess, LocalStorageTable, RedisStorageTable];
`,
    );
    const module = resolution === 'node16' ? 'node16' : 'esnext';
    write(
      `tsconfig.${resolution}.json`,
      JSON.stringify({ compilerOptions: { module, moduleResolution: resolution, target: 'es2022', strict: true, skipLibCheck: false, noEmit: true, types: ['node'] }, files: ['consumer.ts'] }),
    );
    const checked = await runCommand(process.execPath, [TYPESCRIPT, '-p', `tsconfig.${resolution}.json`], directory, env);
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
  });

  it('bundles a reader with esbuild into one file that runs away from node_modules (the Lua scripts travel inside)', async ({ skip }) => {
    const { write, directory } = requireProject(skip);
    const entry = write(
      'bundledReader.mjs',
      `import { openReader } from 'tablecache/client';
const reader = await openReader({ url: process.argv[2], keyPrefix: process.argv[3], table: 'items' });
const items = await reader.range('primary_key', 1, 4);
await reader.close();
console.log(JSON.stringify(items));
`,
    );
    const bundleFile = path.join(path.dirname(directory), 'bundle/reader.mjs');
    const { build } = (await import(ESBUILD)) as typeof Esbuild;
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: bundleFile,
      logLevel: 'silent',
      // ioredis is CommonJS and requires Node's modules: give the ESM bundle a require.
      banner: { js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);" },
    });
    const result = await runCommand(process.execPath, [bundleFile, testRedisUrl(), keyPrefix], path.dirname(bundleFile), env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([1, 2, 3].map((id) => ({ item_id: id, name: `Item ${id}` })));
  });

  it('gives a service that only reads ioredis and msgpackr, no pg, and a CLI that says what to install', async ({ skip }) => {
    const { directory, write } = requireProject(skip, 'reader-only');
    for (const name of ['ioredis', 'msgpackr']) expect(existsSync(path.join(directory, 'node_modules', name)), name).toBe(true);
    for (const name of [...DAEMON_PEERS, 'pino-pretty', 'tsx', 'esbuild']) expect(existsSync(path.join(directory, 'node_modules', name)), name).toBe(false);
    const script = write(
      'reader.mjs',
      `import { openReader } from 'tablecache/client';
const reader = await openReader({ url: process.argv[2], keyPrefix: process.argv[3], table: 'items' });
console.log(JSON.stringify(await reader.get(5)));
await reader.close();
`,
    );
    const read = await runCommand(process.execPath, [script, testRedisUrl(), keyPrefix], directory, env);
    expect(read.code, read.stderr).toBe(0);
    expect(JSON.parse(read.stdout)).toEqual({ item_id: 5, name: 'Item 5' });
    const cli = await runCommand(path.join(directory, 'node_modules/.bin/tablecache'), ['--help'], directory, env);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('npm install pg pg-cursor pg-listen zod prom-client pino commander yaml');
  });

  it('logs JSON lines, with one warning, when readable logs are asked for and pino-pretty is not installed', async ({ skip }) => {
    const { write } = requireProject(skip);
    const script = write(
      'prettyLogger.mjs',
      `import { createDaemonLogger } from 'tablecache/daemon';
const { logger, statusLine } = createDaemonLogger({ level: 'info', pretty: true });
logger.info({ table: 'items' }, 'table loaded');
console.log(JSON.stringify({ statusLine }));
`,
    );
    const result = await runCommand(process.execPath, [script], project!.directory, env);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { msg?: string; statusLine?: null });
    expect(lines.map((line) => line.msg)).toEqual([expect.stringContaining('pino-pretty is not installed'), 'table loaded', undefined]);
    expect(lines.at(-1)).toEqual({ statusLine: null });
  });
});
