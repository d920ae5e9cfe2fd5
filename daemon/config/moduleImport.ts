import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from './configError.ts';

/** Extensions of the TypeScript modules {@link importModule} compiles with tsx. */
const TYPESCRIPT_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);

/** The part of tsx's ESM API {@link importModule} uses. */
export interface TypeScriptImporter {
  tsImport(specifier: string, parentURL: string): Promise<unknown>;
}

/** Options of {@link importModule}. */
export interface ModuleImportOptions {
  /** What the module is, for messages: `configuration`, `the indexes module of table "users"`. */
  readonly what: string;
  /** The configuration file to name in errors (default: `file`). */
  readonly configFile?: string;
  /** Loads tsx's ESM API (default: `import('tsx/esm/api')`); tests replace it to play a missing tsx. */
  readonly loadTypeScriptImporter?: () => Promise<TypeScriptImporter>;
}

/**
 * Imports a JS or TS module given by path and returns its namespace
 * (`default`, named exports).
 *
 * A TypeScript module in an ES module scope (`.mts`, or `.ts` under a
 * `"type": "module"` package.json) is imported natively when a TypeScript
 * loader is already registered (as `bin/tablecache.js` does), so it shares
 * this process's modules. Otherwise it is compiled with tsx's `tsImport`,
 * which works from any folder: Node's loader, even with tsx registered,
 * treats a `.ts` file outside a `"type": "module"` folder as CommonJS and
 * fails ("Cannot require() ES Module … in a cycle"). tsx is loaded only for
 * TypeScript, so JS and YAML configurations work without it.
 *
 * @throws {@link ConfigError} when the module cannot be loaded (the message says why), or tsx is not installed for a TypeScript module.
 */
export async function importModule(file: string, options: ModuleImportOptions): Promise<Record<string, unknown>> {
  const configFile = options.configFile ?? file;
  const extension = path.extname(file).toLowerCase();
  const failed = (error: unknown) => new ConfigError(`Could not load ${options.what} ${file}: ${(error as Error).message}`, { file: configFile, cause: error });
  const typeScript = TYPESCRIPT_EXTENSIONS.has(extension);
  if (!typeScript || extension === '.mts' || (extension === '.ts' && inModuleScope(file))) {
    try {
      return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (error) {
      // No TypeScript loader registered: compile it with tsx below.
      if (!typeScript || (error as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw failed(error);
    }
  }
  const importer = await loadImporter(file, configFile, options);
  let namespace: Record<string, unknown>;
  try {
    namespace = (await importer.tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  } catch (error) {
    throw failed(error);
  }
  // tsx compiles a .ts file outside a "type": "module" folder to CommonJS; its exports then sit under `default`.
  const wrapped = namespace.default as Record<string, unknown> | undefined;
  return typeof wrapped === 'object' && wrapped !== null && wrapped.__esModule === true ? wrapped : namespace;
}

/** Whether Node treats a `.ts`/`.js` file as an ES module: the nearest package.json says `"type": "module"`. */
function inModuleScope(file: string): boolean {
  for (let directory = path.dirname(file); ; directory = path.dirname(directory)) {
    const manifest = path.join(directory, 'package.json');
    if (existsSync(manifest)) {
      try {
        return (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: unknown }).type === 'module';
      } catch {
        return false;
      }
    }
    if (path.dirname(directory) === directory) return false;
  }
}

async function loadImporter(file: string, configFile: string, options: ModuleImportOptions): Promise<TypeScriptImporter> {
  try {
    return await (options.loadTypeScriptImporter ?? (() => import('tsx/esm/api')))();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new ConfigError(
      `Cannot load ${options.what} ${file}: install tsx (npm i -D tsx) to load a TypeScript configuration, or use .js/.mjs/.yaml.`,
      { file: configFile, cause: error },
    );
  }
}
