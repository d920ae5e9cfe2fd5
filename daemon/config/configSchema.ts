import { z } from 'zod';
import type { AnyIndexes } from '../../lib/core/indexes.ts';
import type { ClusterNatMap } from '../../lib/redis/clusterNatMap.ts';
import { TRIGGER_DEFAULTS } from '../../sql-triggers/triggerSpec.ts';
import { nearestNames } from './nearestNames.ts';

/**
 * Builds a table's {@link Indexes} in code (JS/TS configurations, or the
 * default export of a table's `module`). Receives the table's validated
 * configuration; may be async.
 */
export type IndexesFactory = (table: TableConfig) => AnyIndexes<Record<string, unknown>> | Promise<AnyIndexes<Record<string, unknown>>>;

/** The defaults of every optional setting, in one place. */
export const CONFIG_DEFAULTS = {
  redis: { keyPrefix: 'tablecache:', waitReplicas: 0, waitTimeoutMs: 1_000 },
  triggers: TRIGGER_DEFAULTS,
  capture: { method: 'triggers' },
  daemon: { http: { host: '127.0.0.1', port: 9464 }, batchWindowMs: 0, maxBatchKeys: 10_000, minReloadIntervalMs: 5_000, verifySenders: false, leaseTtlMs: 5_000, captureCheckIntervalMs: 5_000, refreshTimeoutMs: 30_000, loadTimeoutMs: 300_000, maxLagMs: 30_000, logLevel: 'info' },
} as const;

/** A strict object whose "unknown key" error lists the keys it knows, nearest first. */
function strictObject<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      const hints = issue.keys.map((key) => `"${key}" (did you mean "${nearestNames(key, known, 1)[0]}"?)`);
      return `unknown key ${hints.join(', ')}; expected only ${known.join(', ')}`;
    },
  });
}

/** Integers also accepted as digit strings, since `${VAR}` substitution gives strings. */
function integer(min: number, max: number) {
  const error = `expected an integer from ${min} to ${max}`;
  return z
    .union([z.number(), z.string().regex(/^\d+$/).transform(Number)], { error })
    .pipe(z.number().int({ error }).min(min, { error }).max(max, { error }));
}

function fraction() {
  const error = 'expected a number from 0 to 1';
  return z
    .union([z.number(), z.string().regex(/^\d*\.?\d+$/).transform(Number)], { error })
    .pipe(z.number().min(0, { error }).max(1, { error }));
}

function booleanSetting() {
  return z.union([z.boolean(), z.enum(['true', 'false']).transform((text) => text === 'true')], { error: 'expected true or false' });
}

function url(schemes: readonly string[]) {
  const expected = `a URL starting with ${schemes.map((scheme) => `${scheme}//`).join(' or ')}`;
  return z.string({ error: `expected ${expected}` }).refine(
    (text) => {
      try {
        return schemes.includes(new URL(text).protocol);
      } catch {
        return false;
      }
    },
    { error: `expected ${expected}` },
  );
}

const columnName = z.string({ error: 'expected a column name' }).min(1, { error: 'expected a column name, got an empty string' });
const columnList = z.union([columnName, z.array(columnName).min(1)], {
  error: 'expected a column name or a non-empty list of column names',
});
const sqlText = z.string({ error: 'expected SQL text' }).trim().min(1, { error: 'expected SQL text, got an empty string' });

const sourceSchema = strictObject({
  key: columnList,
  match: columnList.optional(),
  resolve: sqlText.optional(),
  columns: z.array(columnName, { error: 'expected a non-empty list of column names' }).min(1).optional(),
}).refine((source) => source.match === undefined || source.resolve === undefined, {
  error: 'give either match or resolve, not both',
});

const tableSchema = strictObject({
  query: sqlText.optional(),
  primaryKey: columnList,
  sources: z
    .record(z.string().min(1), sourceSchema, { error: 'expected a map of source table name to { key, … }' })
    .refine((sources) => Object.keys(sources).length > 0, { error: 'expected at least one source table' }),
  module: z.string({ error: 'expected a path to a JS/TS module' }).min(1).optional(),
  indexes: z.custom<IndexesFactory>((value) => typeof value === 'function', { error: 'expected a function that returns Indexes' }).optional(),
  hashTag: z
    .string({ error: 'expected the hash tag to place the table under: its keys become {<keyPrefix><hashTag>}<table>:…' })
    .min(1)
    .refine((tag) => !/[{}]/.test(tag), { error: (issue) => `the hash tag ${JSON.stringify(issue.input)} contains "{" or "}", which would end the Redis hash tag early; choose a tag without braces` })
    .optional(),
}).refine((table) => table.query !== undefined || table.module !== undefined || table.indexes !== undefined, {
  error: 'expected query, module or indexes: how to read the cached records',
});

const tlsSchema = z.union(
  [
    booleanSetting(),
    strictObject({
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
      rejectUnauthorized: booleanSetting().default(true),
      servername: z.string().min(1).optional(),
    }).refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), {
      error: 'give certFile and keyFile together (a client certificate and its private key), or neither',
    }),
  ],
  { error: 'expected true, false, or { caFile, certFile, keyFile, rejectUnauthorized, servername }' },
);

const { redis: redisDefaults, triggers: triggerDefaults, daemon: daemonDefaults } = CONFIG_DEFAULTS;

/**
 * A cached table's name: it goes into Redis key names (inside the hash tag,
 * where "{" or "}" would move the key to another Cluster slot), ACL key
 * patterns (where `*`, `?`, `[` are globs), metric labels and command-line
 * arguments, so it is kept to characters that mean nothing in any of them.
 */
const CACHED_TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Distinct characters of `text` that `allowed` does not match, quoted, for messages: `"{", " "`. */
function badCharacters(text: string, allowed: RegExp): string {
  return [...new Set([...text].filter((character) => !allowed.test(character)))].map((character) => JSON.stringify(character)).join(', ');
}

function describeBadTableName(name: string): string {
  if (name === '') return 'a cached table name must not be empty';
  const bad = badCharacters(name, /[A-Za-z0-9_-]/);
  const why = bad === '' ? 'it starts with a digit or "-"' : `it contains ${bad}`;
  return `the cached table name ${JSON.stringify(name)} is not allowed: ${why}. Use letters, digits, _ and - (starting with a letter or _): the name becomes part of Redis key names, ACL patterns and metric labels. The source tables keep their own names.`;
}

/** The key prefix goes inside the Redis hash tag: a brace would end it early or open another. */
const keyPrefixSchema = z
  .string()
  .min(1)
  .refine((prefix) => !/[{}]/.test(prefix), {
    error: (issue) => `the key prefix ${JSON.stringify(issue.input)} contains ${badCharacters(String(issue.input), /[^{}]/)}, which would break the Redis hash tag {<keyPrefix><table>}; choose a prefix without braces`,
  });

const redisUrl = url(['redis:', 'rediss:']);
const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, { error: 'expected "host:port"' })
  .refine((text) => {
    const port = Number(text.slice(text.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65_535;
  }, { error: 'expected a port from 1 to 65535' });

const clusterSchema = strictObject({
  nodes: z.array(redisUrl, { error: 'expected a list of node URLs: ["redis://host:port", …]' }).min(1, { error: 'expected at least one node URL: any node of the cluster finds the others' }),
  natMap: z
    .record(hostPort, z.union([hostPort, strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65_535) })], { error: 'expected "host:port" or { host, port }' }), {
      error: 'expected a map of "host:port" as the cluster announces a node to "host:port" (or { host, port }) as this process reaches it',
    })
    .optional(),
  scaleReads: z.enum(['master', 'slave', 'all'], { error: 'expected master, slave or all' }).optional(),
});

const sentinelSchema = strictObject({
  sentinels: z.array(redisUrl, { error: 'expected a list of sentinel URLs: ["redis://host:26379", …]' }).min(1, { error: 'expected at least one sentinel URL' }),
  name: z.string({ error: 'expected the master name the sentinels monitor (sentinel monitor <name> …)' }).min(1),
  role: z.enum(['master', 'replica'], { error: 'expected master or replica' }).optional(),
  sentinelUsername: z.string().min(1).optional(),
  sentinelPassword: z.string().min(1).optional(),
  tls: booleanSetting().optional(),
}).refine((sentinel) => sentinel.tls !== false || !sentinel.sentinels.some((url) => url.startsWith('rediss:')), {
  error: 'tls: false keeps the sentinel connections plain, but a sentinel URL is rediss://: write redis:// or remove tls: false',
});

/** Where Redis is: exactly one of a URL, a cluster, or a sentinel-watched primary. */
const REDIS_TARGETS = ['url', 'cluster', 'sentinel'] as const;

const redisSchema = strictObject({
  url: redisUrl.optional(),
  cluster: clusterSchema.optional(),
  sentinel: sentinelSchema.optional(),
  keyPrefix: keyPrefixSchema.default(redisDefaults.keyPrefix),
  waitReplicas: integer(0, 100).default(redisDefaults.waitReplicas),
  waitTimeoutMs: integer(1, 60_000).default(redisDefaults.waitTimeoutMs),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  tls: tlsSchema.default(false),
}).superRefine((redis, context) => {
  const given = REDIS_TARGETS.filter((target) => redis[target] !== undefined);
  if (given.length === 1) return;
  const message =
    given.length === 0
      ? 'expected where Redis is: url (one Redis: "redis://host:6379"), cluster ({ nodes: ["redis://host:port", …] }) or sentinel ({ sentinels: [...], name })'
      : `expected exactly one of url, cluster and sentinel, got ${given.join(' and ')}: keep the one that describes your Redis and remove the other${given.length > 2 ? 's' : ''}`;
  context.addIssue({ code: 'custom', message });
});

/** The zod schema of a configuration file, before names are parsed; {@link loadConfig} applies it. */
export const configFileSchema = strictObject({
  postgres: strictObject({
    url: url(['postgres:', 'postgresql:']),
    listenUrl: url(['postgres:', 'postgresql:']).optional(),
  }),
  redis: redisSchema,
  triggers: strictObject({
    schema: z.string().default(triggerDefaults.schema),
    channel: z.string().default(triggerDefaults.channel),
    maxKeysPerStatement: integer(1, 1_000_000).default(triggerDefaults.maxKeysPerStatement),
    maxNotificationsPerStatement: integer(1, 10_000).default(triggerDefaults.maxNotificationsPerStatement),
    maxQueueUsage: fraction().default(triggerDefaults.maxQueueUsage),
  }).prefault({}),
  capture: strictObject({
    method: z.enum(['triggers', 'logical'], { error: 'expected "triggers" (the default: triggers and NOTIFY) or "logical" (a pgoutput slot)' }).default(CONFIG_DEFAULTS.capture.method),
    slot: z.string({ error: 'expected a replication slot name' }).optional(),
    publication: z.string({ error: 'expected a publication name' }).optional(),
  }).prefault({}),
  daemon: strictObject({
    http: strictObject({
      host: z.string().min(1).default(daemonDefaults.http.host),
      port: integer(0, 65_535).default(daemonDefaults.http.port),
    }).prefault({}),
    batchWindowMs: integer(0, 60_000).default(daemonDefaults.batchWindowMs),
    maxBatchKeys: integer(1, 10_000_000).default(daemonDefaults.maxBatchKeys),
    minReloadIntervalMs: integer(0, 3_600_000).default(daemonDefaults.minReloadIntervalMs),
    maxQueuedKeysPerTable: integer(1, 100_000_000).optional(),
    verifySenders: z.boolean().default(daemonDefaults.verifySenders),
    leaseTtlMs: integer(1_000, 600_000).default(daemonDefaults.leaseTtlMs),
    captureCheckIntervalMs: integer(100, 3_600_000).default(daemonDefaults.captureCheckIntervalMs),
    refreshTimeoutMs: integer(0, 86_400_000).default(daemonDefaults.refreshTimeoutMs),
    loadTimeoutMs: integer(0, 86_400_000).default(daemonDefaults.loadTimeoutMs),
    maxLagMs: integer(0, 86_400_000).default(daemonDefaults.maxLagMs),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default(daemonDefaults.logLevel),
  }).prefault({}),
  tables: z
    .record(z.string().regex(CACHED_TABLE_NAME), tableSchema, {
      error: (issue) =>
        issue.code === 'invalid_key' ? describeBadTableName(String(issue.input)) : 'expected a map of cached table name to { query, primaryKey, sources }',
    })
    .refine((tables) => Object.keys(tables).length > 0, { error: 'expected at least one cached table' }),
});

/** What a configuration file (or `defineConfig`) may contain: optional settings may be left out. */
export type ConfigInput = z.input<typeof configFileSchema>;

/** One source table of a cached table, validated and with names parsed. */
export interface SourceConfig {
  /** The table's canonical name, as in payloads: `public.users`. */
  readonly name: string;
  readonly schema: string;
  readonly table: string;
  /** The changed row's columns that identify affected cached records. */
  readonly key: readonly string[];
  /** The cached records' columns the key values are matched against (default: the primary key). Absent with `resolve`. */
  readonly match?: readonly string[];
  /** SQL mapping changed keys to cached primary keys: `$1`…`$n` are arrays, one per key column. */
  readonly resolve?: string;
  /** Only changes to these columns (or the key) matter; absent: every change matters. */
  readonly columns?: readonly string[];
  /** Where it is in the file, for messages: `tables.users.sources.cities`. */
  readonly configPath: string;
}

/** One cached table, validated and with names parsed. */
export interface TableConfig {
  readonly name: string;
  readonly query?: string;
  readonly primaryKey: readonly string[];
  readonly sources: readonly SourceConfig[];
  /** Absolute path of a JS/TS module whose default export is an {@link IndexesFactory}. */
  readonly module?: string;
  readonly indexes?: IndexesFactory;
  /**
   * Where the table's keys live: under the hash tag `{<keyPrefix><hashTag>}`
   * instead of `{<keyPrefix><table>}`, so an operator chooses its Redis
   * Cluster slot (docs/redis-key-layout.md, "Placing a table"). Readers pass
   * the same `hashTag` to `openReader`.
   */
  readonly hashTag?: string;
  readonly configPath: string;
}

/**
 * TLS settings for Redis: `false`, or the options to connect with TLS. The
 * file paths are absolute: `caFile` the CA to trust (PEM), `certFile` and
 * `keyFile` a client certificate and its key (for `tls-auth-clients yes`).
 */
export type RedisTlsConfig =
  | false
  | {
      readonly caFile?: string;
      readonly certFile?: string;
      readonly keyFile?: string;
      readonly rejectUnauthorized: boolean;
      readonly servername?: string;
    };

/** How the daemon learns of changes: triggers and NOTIFY (the default), or a logical replication slot. */
export type CaptureMethod = 'triggers' | 'logical';

/** The `capture` section, resolved: `slot` and `publication` always named (defaults derived from the channel and key prefix). */
export interface CaptureConfig {
  readonly method: CaptureMethod;
  /** The logical replication slot (plugin `pgoutput`); default `<triggers.channel>_<key prefix>`. */
  readonly slot: string;
  /** The publication of the source tables; default as `slot`. */
  readonly publication: string;
}

/**
 * A Redis Cluster: `nodes` are seeds (any reachable node tells the client the
 * others); `natMap` translates the addresses nodes announce (`host:port`) to
 * those this process reaches them at (Docker, NAT), the shape the reader's
 * `cluster.natMap` takes; `scaleReads` is where
 * `verify` reads (the daemon always reads and writes masters: its checks must
 * see its own writes).
 */
export interface RedisClusterConfig {
  readonly nodes: readonly string[];
  readonly natMap?: ClusterNatMap;
  readonly scaleReads?: 'master' | 'slave' | 'all';
}

/**
 * A primary with replicas behind Redis Sentinel: the sentinels to ask, the
 * master `name` they monitor, and `role`, what `verify` connects to (the
 * daemon always connects to the primary). `sentinelUsername` and
 * `sentinelPassword` log in to the sentinels (else the sentinel URLs' own).
 * `tls: false` keeps the connections to the sentinels plain while
 * `redis.tls` applies to the data nodes (by default it applies to both).
 */
export interface RedisSentinelConfig {
  readonly sentinels: readonly string[];
  readonly name: string;
  readonly role?: 'master' | 'replica';
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  readonly tls?: boolean;
}

/**
 * Where Redis is and how to log in: exactly one of `url`, `cluster` and
 * `sentinel` is set. `username`, `password` and `tls` apply to every data
 * node (and win over credentials in the URLs); `tls` to the sentinels too.
 */
export interface RedisConfig {
  readonly url?: string;
  readonly cluster?: RedisClusterConfig;
  readonly sentinel?: RedisSentinelConfig;
  readonly keyPrefix: string;
  /**
   * Replicas that must acknowledge a table's barrier mark (Redis `WAIT`,
   * at most `waitTimeoutMs`) before the barrier's all-tables mark is set;
   * absent or 0: no wait.
   */
  readonly waitReplicas?: number;
  readonly waitTimeoutMs?: number;
  readonly username?: string;
  readonly password?: string;
  readonly tls: RedisTlsConfig;
}

/** A validated configuration: every default applied, every name parsed, every path absolute. */
export interface TablecacheConfig {
  /** Absolute path of the file it was read from. */
  readonly file: string;
  readonly postgres: {
    readonly url: string;
    /** The URL the daemon LISTENs on: a direct session on the primary (defaults to `url`). */
    readonly listenUrl: string;
  };
  readonly redis: RedisConfig;
  readonly triggers: {
    readonly schema: string;
    readonly channel: string;
    readonly maxKeysPerStatement: number;
    readonly maxNotificationsPerStatement: number;
    readonly maxQueueUsage: number;
  };
  /** Where changes come from; the slot and publication are resolved in both methods (uninstall needs them after a switch). */
  readonly capture: CaptureConfig;
  readonly daemon: {
    readonly http: { readonly host: string; readonly port: number };
    readonly batchWindowMs: number;
    readonly maxBatchKeys: number;
    /**
     * Least time between two reloads of a table that notifications ask for
     * (coarse or truncate payloads, unknown versions, unmappable keys, key
     * floods); requests within it are coalesced into one reload at its end.
     */
    readonly minReloadIntervalMs: number;
    /** Distinct keys queued for one table beyond which they become one reload (default 5 × `maxBatchKeys`). */
    readonly maxQueuedKeysPerTable?: number | undefined;
    /**
     * Check that the session sending each change notification may write a
     * table it names (its role, from `pg_stat_activity`); forged ones are
     * skipped and counted as `rejected`.
     */
    readonly verifySenders: boolean;
    /** Writer lease lifetime in Redis: a standby takes over at most about this long after the writer died. */
    readonly leaseTtlMs: number;
    /** How often the daemon checks that the source tables' triggers are in place and their shape unchanged. */
    readonly captureCheckIntervalMs: number;
    /**
     * Statement timeout of a refresh step's queries (`resolve` queries and the
     * refresh by key), in ms; 0: none. A refresh that runs longer fails, and
     * its table is reloaded after a pause, without delaying other tables.
     */
    readonly refreshTimeoutMs: number;
    /** Statement timeout of each query of a reload (the row estimate, each cursor fetch of 1,000 rows), in ms; 0: none. */
    readonly loadTimeoutMs: number;
    /**
     * Age of a table's oldest change not yet visible beyond which `/readyz`
     * is not ready (ready again once it stayed below half of it for 5 s); 0: never.
     */
    readonly maxLagMs: number;
    readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  };
  readonly tables: readonly TableConfig[];
}
