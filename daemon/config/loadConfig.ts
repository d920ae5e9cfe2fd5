import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { TablecacheError } from '../../lib/core/errors.ts';
import { parseColumnName, parseQualifiedName, formatQualifiedName } from '../../sql-triggers/identifiers.ts';
import { checkTriggerChannel, checkTriggerSchema } from '../../sql-triggers/triggerSpec.ts';
import { checkPublicationName, checkSlotName, defaultCaptureName } from '../../sql-triggers/logicalCaptureSpec.ts';
import { ConfigError, formatConfigPath } from './configError.ts';
import { configFileSchema, type CaptureConfig, type RedisConfig, type SourceConfig, type TableConfig, type TablecacheConfig } from './configSchema.ts';
import { substituteEnvironment } from './environment.ts';
import { importModule } from './moduleImport.ts';

type ParsedFile = z.output<typeof configFileSchema>;
type ParsedTable = ParsedFile['tables'][string];
type ParsedSource = ParsedTable['sources'][string];

/** Where a configuration came from, for messages and relative paths. */
export interface ConfigOrigin {
  /** The file's path (messages name it). */
  readonly file: string;
  /** Relative `module` and TLS file paths are resolved against this directory (default: the file's). */
  readonly baseDirectory?: string;
  /** Values for `${VAR}` (default: `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
}

const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);

/** Collects every problem of the normalisation step, so one run reports them all. */
class Problems {
  readonly messages: string[] = [];

  /** Runs `read`; a {@link TablecacheError} it throws becomes a message at `at`. */
  attempt<T>(at: readonly PropertyKey[], read: () => T): T | undefined {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof TablecacheError)) throw error;
      this.add(at, error.message);
      return undefined;
    }
  }

  add(at: readonly PropertyKey[], message: string): void {
    this.messages.push(`${formatConfigPath(at)}: ${message}`);
  }
}

function columns(value: string | readonly string[]): string[] {
  return typeof value === 'string' ? [value] : [...value];
}

function parseColumns(problems: Problems, at: readonly PropertyKey[], value: string | readonly string[]): string[] {
  return columns(value).map((text, index) => problems.attempt(typeof value === 'string' ? at : [...at, index], () => parseColumnName(text)) ?? text);
}

function existingFile(problems: Problems, at: readonly PropertyKey[], baseDirectory: string, file: string, what: string): string {
  const absolute = path.resolve(baseDirectory, file);
  if (!existsSync(absolute)) problems.add(at, `${what} ${JSON.stringify(file)} does not exist (looked for ${absolute}).`);
  return absolute;
}

function normalizeSource(problems: Problems, at: readonly PropertyKey[], name: string, source: ParsedSource, primaryKey: readonly string[]): SourceConfig | undefined {
  const table = problems.attempt(at, () => parseQualifiedName(name));
  if (table === undefined) return undefined;
  const key = parseColumns(problems, [...at, 'key'], source.key);
  const result: SourceConfig = {
    name: formatQualifiedName(table),
    schema: table.schema,
    table: table.table,
    key,
    configPath: formatConfigPath(at),
    ...(source.columns === undefined ? {} : { columns: parseColumns(problems, [...at, 'columns'], source.columns) }),
  };
  if (source.resolve !== undefined) return { ...result, resolve: source.resolve };
  const match = source.match === undefined ? [...primaryKey] : parseColumns(problems, [...at, 'match'], source.match);
  if (match.length !== key.length) {
    const from = source.match === undefined ? 'primaryKey (the default of match)' : 'match';
    problems.add(at, `key names ${key.length} column(s) but ${from} names ${match.length}; they pair up one to one, so give a match of ${key.length} column(s) or a resolve query.`);
  }
  return { ...result, match };
}

function normalizeTable(problems: Problems, name: string, table: ParsedTable, baseDirectory: string): TableConfig {
  const at = ['tables', name];
  const primaryKey = parseColumns(problems, [...at, 'primaryKey'], table.primaryKey);
  const sources = Object.entries(table.sources).flatMap(([sourceName, source]) => {
    const normalized = normalizeSource(problems, [...at, 'sources', sourceName], sourceName, source, primaryKey);
    return normalized === undefined ? [] : [normalized];
  });
  const seen = new Map<string, string>();
  for (const source of sources) {
    const earlier = seen.get(source.name);
    if (earlier !== undefined) problems.add(at, `sources ${earlier} and ${source.configPath} both name table ${source.name}; merge them.`);
    seen.set(source.name, source.configPath);
  }
  let modulePath: string | undefined;
  if (table.module !== undefined) {
    modulePath = existingFile(problems, [...at, 'module'], baseDirectory, table.module, 'module');
    if (!MODULE_EXTENSIONS.has(path.extname(modulePath))) {
      problems.add([...at, 'module'], `${JSON.stringify(table.module)} is not a JS/TS module; expected one of ${[...MODULE_EXTENSIONS].join(', ')}.`);
    }
  }
  return {
    name,
    primaryKey,
    sources,
    configPath: formatConfigPath(at),
    ...(table.query === undefined ? {} : { query: table.query }),
    ...(modulePath === undefined ? {} : { module: modulePath }),
    ...(table.indexes === undefined ? {} : { indexes: table.indexes }),
    ...(table.hashTag === undefined ? {} : { hashTag: table.hashTag }),
  };
}

function normalizeCapture(problems: Problems, parsed: ParsedFile): CaptureConfig {
  const { method, slot, publication } = parsed.capture;
  const derived = defaultCaptureName(parsed.triggers.channel, parsed.redis.keyPrefix);
  return {
    method,
    slot: problems.attempt(['capture', 'slot'], () => checkSlotName(slot ?? derived)) ?? derived,
    publication: problems.attempt(['capture', 'publication'], () => checkPublicationName(publication ?? derived)) ?? derived,
  };
}

function normalize(parsed: ParsedFile, file: string, baseDirectory: string): TablecacheConfig {
  const problems = new Problems();
  problems.attempt(['triggers', 'schema'], () => checkTriggerSchema(parsed.triggers.schema));
  problems.attempt(['triggers', 'channel'], () => checkTriggerChannel(parsed.triggers.channel));
  const tls = parsed.redis.tls;
  const redisTls =
    typeof tls === 'boolean'
      ? tls && { rejectUnauthorized: true }
      : {
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(tls.servername === undefined ? {} : { servername: tls.servername }),
          ...(tls.caFile === undefined ? {} : { caFile: existingFile(problems, ['redis', 'tls', 'caFile'], baseDirectory, tls.caFile, 'CA file') }),
          ...(tls.certFile === undefined ? {} : { certFile: existingFile(problems, ['redis', 'tls', 'certFile'], baseDirectory, tls.certFile, 'certificate file') }),
          ...(tls.keyFile === undefined ? {} : { keyFile: existingFile(problems, ['redis', 'tls', 'keyFile'], baseDirectory, tls.keyFile, 'key file') }),
        };
  const tables = Object.entries(parsed.tables).map(([name, table]) => normalizeTable(problems, name, table, baseDirectory));
  const capture = normalizeCapture(problems, parsed);
  if (problems.messages.length > 0) throw configError(file, problems.messages);
  return {
    file,
    postgres: { url: parsed.postgres.url, listenUrl: parsed.postgres.listenUrl ?? parsed.postgres.url },
    redis: {
      ...redisTarget(parsed.redis),
      keyPrefix: parsed.redis.keyPrefix,
      tls: redisTls,
      ...(parsed.redis.waitReplicas === 0 ? {} : { waitReplicas: parsed.redis.waitReplicas, waitTimeoutMs: parsed.redis.waitTimeoutMs }),
      ...(parsed.redis.username === undefined ? {} : { username: parsed.redis.username }),
      ...(parsed.redis.password === undefined ? {} : { password: parsed.redis.password }),
    },
    triggers: parsed.triggers,
    capture,
    daemon: parsed.daemon,
    tables,
  };
}

/** The one of url, cluster and sentinel that the schema let through, without keys left undefined. */
function redisTarget(redis: ParsedFile['redis']): Pick<RedisConfig, 'url' | 'cluster' | 'sentinel'> {
  if (redis.url !== undefined) return { url: redis.url };
  if (redis.cluster !== undefined) {
    const { nodes, natMap, scaleReads } = redis.cluster;
    return { cluster: { nodes, ...(natMap === undefined ? {} : { natMap }), ...(scaleReads === undefined ? {} : { scaleReads }) } };
  }
  const { sentinels, name, role, sentinelUsername, sentinelPassword, tls } = redis.sentinel!;
  return {
    sentinel: {
      sentinels,
      name,
      ...(role === undefined ? {} : { role }),
      ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
      ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
      ...(tls === undefined ? {} : { tls }),
    },
  };
}

function configError(file: string, messages: readonly string[]): ConfigError {
  const list = messages.length === 1 ? ` ${messages[0]}` : `\n${messages.map((message) => `  - ${message}`).join('\n')}`;
  return new ConfigError(`Invalid configuration in ${file}:${list}`, { file });
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  const value = issue.path.reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown> | undefined)?.[key], root);
  const missing = value === undefined && issue.code !== 'unrecognized_keys' && issue.code !== 'custom';
  const message = missing ? `missing: ${issue.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')}` : issue.message;
  return `${formatConfigPath(issue.path)}: ${message}`;
}

/**
 * Validates an already-parsed configuration (what a YAML/JSON file or a
 * `defineConfig` module holds): substitutes `${VAR}`, checks every key and
 * value, applies defaults, parses table and column names (SQL identifier
 * syntax: unquoted names fold to lower case), resolves relative paths.
 *
 * @throws {@link ConfigError} listing every problem, each with its config path and what was expected.
 */
export function parseConfig(raw: unknown, origin: ConfigOrigin): TablecacheConfig {
  const file = path.resolve(origin.file);
  const substituted = substituteEnvironment(raw, origin.env ?? process.env, file);
  const result = configFileSchema.safeParse(substituted);
  if (!result.success) throw configError(file, result.error.issues.map((issue) => describeIssue(issue, substituted)));
  return normalize(result.data, file, origin.baseDirectory ?? path.dirname(file));
}

async function readRaw(file: string): Promise<unknown> {
  const extension = path.extname(file).toLowerCase();
  if (MODULE_EXTENSIONS.has(extension)) {
    const module = await importModule(file, { what: 'the configuration' });
    const exported = module.default ?? module.config;
    if (exported === undefined) throw new ConfigError(`${file} exports no configuration: expected \`export default defineConfig({ … })\`.`, { file });
    return typeof exported === 'function' ? await (exported as () => unknown)() : exported;
  }
  const text = readFileSync(file, 'utf8');
  if (extension === '.json') {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${file} is not valid JSON: ${(error as Error).message}`, { file, cause: error });
    }
  }
  if (extension === '.yaml' || extension === '.yml') {
    try {
      return YAML.parse(text);
    } catch (error) {
      throw new ConfigError(`${file} is not valid YAML: ${(error as Error).message}`, { file, cause: error });
    }
  }
  throw new ConfigError(`${file}: unsupported configuration file type ${JSON.stringify(extension)}; expected .yaml, .yml, .json, or a JS/TS module (${[...MODULE_EXTENSIONS].join(', ')}).`, { file });
}

/**
 * Reads and validates a configuration file: YAML (`.yaml`, `.yml`), JSON, or a
 * JS/TS module whose default export is the configuration (see
 * `defineConfig`) or a function returning it.
 *
 * @throws {@link ConfigError} when the file is missing, unreadable, malformed or invalid; the message names the file,
 * the path of every bad key and what was expected.
 * @example
 * ```ts
 * const config = await loadConfig('tablecache.yaml');
 * console.log(config.tables.map((table) => table.name));
 * ```
 */
export async function loadConfig(file: string, options: Omit<ConfigOrigin, 'file'> = {}): Promise<TablecacheConfig> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) throw new ConfigError(`Configuration file ${absolute} does not exist.`, { file: absolute });
  return parseConfig(await readRaw(absolute), { ...options, file: absolute });
}
