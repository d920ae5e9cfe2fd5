import { InvalidArgumentError } from '../core/errors.ts';
import type { Score } from '../core/interval.ts';
import type { PrimaryKey } from '../core/storageTable.ts';

/**
 * The Redis key layout of one cached table, shared by the writer and every
 * reader. docs/redis-key-layout.md describes it for readers in other
 * languages; this module is its one implementation here.
 */

/** The layout version written to the metadata hash; readers refuse any other. */
export const LAYOUT_FORMAT_VERSION = '1';

/** The key prefix used when none is given. */
export const DEFAULT_KEY_PREFIX = 'tablecache:';

/** Fields of the metadata hash (`{prefix+table}:meta`). */
export const MetaField = {
  format: 'format',
  generation: 'gen',
  loaded: 'loaded',
  codec: 'codec',
  indexes: 'indexes',
  coverage: 'coverage',
  step: 'step',
  refreshedAt: 'refreshedAt',
  loadedAt: 'loadedAt',
  overlay: 'overlay',
  count: 'count',
  fence: 'fence',
  writer: 'writer',
  nextId: 'nextId',
  capturePosition: 'capturePosition',
} as const;

/**
 * Names of every key of one table. All share one hash tag, so they live in
 * one Redis Cluster slot and one Lua script may touch any of them: by default
 * `{<keyPrefix><table>}`, so each table gets a slot of its own; with a
 * `hashTag`, `{<keyPrefix><hashTag>}` followed by the table name, so the
 * operator chooses the slot (and with it the shard) and tables with the same
 * tag share one.
 *
 * @example
 * ```ts
 * new TableKeys('users').meta;                   // '{tablecache:users}:meta'
 * new TableKeys('users').records(7);             // '{tablecache:users}:g7:r'
 * new TableKeys('users', 'tablecache:', 'hot-a').meta;  // '{tablecache:hot-a}users:meta'
 * ```
 */
export class TableKeys {
  /** The common start of every key, hash tag included, e.g. `{tablecache:users}:` or `{tablecache:hot-a}users:`. */
  readonly base: string;

  /**
   * @throws {@link InvalidArgumentError} when the table name or the hash tag is empty, a name contains `{` or `}`
   * (they would break the hash tag), or, with a hash tag, the table name contains `:` (the keys of tables that
   * share a tag are told apart by the table name before the first `:`).
   */
  constructor(
    readonly table: string,
    readonly keyPrefix: string = DEFAULT_KEY_PREFIX,
    readonly hashTag?: string,
  ) {
    if (table.length === 0) throw new InvalidArgumentError('The table name must not be empty.');
    if (hashTag !== undefined && hashTag.length === 0) throw new InvalidArgumentError(`The hash tag of table "${table}" must not be empty; leave it out for the default {<keyPrefix><table>}.`);
    for (const [what, value] of [['table name', table], ['key prefix', keyPrefix], ['hash tag', hashTag ?? '']] as const) {
      if (/[{}]/.test(value)) {
        throw new InvalidArgumentError(`The ${what} "${value}" contains "{" or "}", which would break the Redis hash tag; choose another.`);
      }
    }
    if (hashTag !== undefined && table.includes(':')) {
      throw new InvalidArgumentError(`The table name "${table}" contains ":", which a table with a hash tag must not: tables sharing a tag are told apart by the name before the first ":".`);
    }
    this.base = hashTag === undefined ? `{${keyPrefix}${table}}:` : `{${keyPrefix}${hashTag}}${table}:`;
  }

  /** The metadata hash: what readers need to find and decode the live data. */
  get meta(): string {
    return `${this.base}meta`;
  }

  /** The writer's lease (a string with a TTL). */
  get lease(): string {
    return `${this.base}lease`;
  }

  /**
   * The pub/sub channel of the table's change stream: every published writer
   * step announces its step and the keys it changed there (inside the hash
   * tag, so a Redis Cluster can use SPUBLISH in the table's slot).
   */
  get changes(): string {
    return `${this.base}changes`;
  }

  /** Hash from key-group id to the JSON list of its keys, so any writer can delete leftovers. */
  get owned(): string {
    return `${this.base}owned`;
  }

  /** Records of a generation: hash from primary-key field to encoded record. */
  records(generation: number): string {
    return `${this.base}${generationGroup(generation)}${RECORDS_SUFFIX}`;
  }

  /** One index of a generation: sorted set of primary-key fields by score. */
  index(generation: number, indexName: string): string {
    return `${this.base}${generationGroup(generation)}${indexSuffix(indexName)}`;
  }

  /** Staged puts of a scratch session: hash from primary-key field to encoded record. */
  stagedRecords(staging: number): string {
    return `${this.base}${stagingGroup(staging)}${RECORDS_SUFFIX}`;
  }

  /** Staged deletions of a scratch session: set of primary-key fields. */
  stagedDeletes(staging: number): string {
    return `${this.base}${stagingGroup(staging)}${DELETES_SUFFIX}`;
  }

  /** Scores of the staged puts of a scratch session in one index. */
  stagedIndex(staging: number, indexName: string): string {
    return `${this.base}${stagingGroup(staging)}${indexSuffix(indexName)}`;
  }

  /** Every key a generation may have: its records hash, then one index per name. */
  generationKeys(generation: number, indexNames: readonly string[]): string[] {
    return [this.records(generation), ...indexNames.map((name) => this.index(generation, name))];
  }

  /** Every key a scratch session may have: staged records, staged deletions, then one staged index per name. */
  stagingKeys(staging: number, indexNames: readonly string[]): string[] {
    return [this.stagedRecords(staging), this.stagedDeletes(staging), ...indexNames.map((name) => this.stagedIndex(staging, name))];
  }
}

const RECORDS_SUFFIX = ':r';
const DELETES_SUFFIX = ':d';
const indexSuffix = (indexName: string) => `:i:${indexName}`;

/**
 * What follows the group id in the names of a key group's keys, in the order
 * of {@link TableKeys.generationKeys} / {@link TableKeys.stagingKeys}: what
 * allocateKeyGroup.lua lists in the `owned` hash.
 */
export function keyGroupSuffixes(kind: 'generation' | 'staging', indexNames: readonly string[]): string[] {
  const indexes = indexNames.map(indexSuffix);
  return kind === 'generation' ? [RECORDS_SUFFIX, ...indexes] : [RECORDS_SUFFIX, DELETES_SUFFIX, ...indexes];
}

/** The id of a generation's key group in the `owned` hash. */
export function generationGroup(generation: number): string {
  return `g${generation}`;
}

/** The id of a scratch session's key group in the `owned` hash. */
export function stagingGroup(staging: number): string {
  return `s${staging}`;
}

/**
 * The canonical text of a primary key: the field name in the records hash and
 * the member in every index. Every reader must compute the same text.
 *
 * - a string is itself;
 * - a bigint is its decimal digits (`-12`);
 * - a number that is a safe integer is its decimal digits, any other finite
 *   number its shortest round-trip text (ECMAScript `Number.prototype.toString`).
 *
 * So the number `1`, the bigint `1n` and the string `"1"` name the same
 * record: a primary key column has one type, so they never meet in one table,
 * and untyped readers (other languages, URLs) need no type tag.
 *
 * @throws {@link InvalidArgumentError} for NaN, ±Infinity, or a value that is not a string, number or bigint.
 */
export function primaryKeyField(key: PrimaryKey): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'bigint') return key.toString();
  if (typeof key === 'number' && Number.isFinite(key)) return Object.is(key, -0) ? '0' : String(key);
  throw new InvalidArgumentError(
    `A primary key must be a string, a bigint or a finite number, got ${typeof key === 'number' ? String(key) : typeof key}.`,
  );
}

/**
 * A score as a Redis argument: Redis sorted-set scores are float64, exactly
 * like JavaScript numbers, and the shortest round-trip text parses back to the
 * same float64. ±Infinity become `inf`/`-inf`.
 *
 * @throws {@link InvalidArgumentError} when `score` is NaN or not a number; `describe` names the record and index.
 */
export function scoreArgument(score: Score, describe: () => string): string {
  if (typeof score !== 'number' || Number.isNaN(score)) {
    throw new InvalidArgumentError(
      `${describe()} has the score ${typeof score === 'number' ? 'NaN' : `${String(score)} (a ${typeof score})`}; ` +
        'scores are float64 numbers (±Infinity allowed, NaN not).',
    );
  }
  if (score === Infinity) return 'inf';
  if (score === -Infinity) return '-inf';
  return String(score);
}

/** Parses a score as Redis returns it (`inf`, `-inf`, or `%.17g` text). */
export function parseScore(text: string): Score {
  if (text === 'inf' || text === '+inf') return Infinity;
  if (text === '-inf') return -Infinity;
  return Number(text);
}
