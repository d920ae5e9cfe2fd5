import { createHash } from 'node:crypto';
import { Command } from 'ioredis';
import { InvalidArgumentError, NotLoadedError } from '../../core/errors.ts';
import type { Interval } from '../../core/interval.ts';
import { LAYOUT_FORMAT_VERSION, scoreArgument, type TableKeys } from '../keyLayout.ts';
import { LuaScript, type RedisArgument, type ScriptConnection } from '../luaScript.ts';
import { StorageFormatError } from '../redisErrors.ts';
import { luaSource } from './luaSources.ts';

/**
 * The read-only scripts of readers (tablecache/client): each file's header
 * states its KEYS, ARGV and reply. They are part of the key layout contract:
 * what they read is what docs/redis-key-layout.md describes.
 */
export const readerScripts = {
  get: new LuaScript('readerGet', luaSource('readerGet')),
  range: new LuaScript('readerRange', luaSource('readerRange')),
  info: new LuaScript('readerInfo', luaSource('readerInfo')),
  coverage: new LuaScript('readerCoverage', luaSource('readerCoverage')),
} as const;

/** The name of one reader script. */
export type ReaderScriptName = keyof typeof readerScripts;

/**
 * The same reader scripts as one Redis Functions library, called with
 * FCALL_RO: Redis runs a function with less overhead per call than EVALSHA
 * (measured: 1 to 4 µs less per read on the bench machine, where a loopback
 * round trip takes about 18 µs). The writer loads it (FUNCTION LOAD); readers fall back
 * to the scripts where it is missing. Its name carries a hash of the
 * scripts, so writers and readers of different versions never call each
 * other's code.
 */
export const readerFunctionLibrary = buildLibrary();

function buildLibrary(): {
  readonly name: string;
  readonly source: string;
  /** Each script's function name, computed once (reads are hot). */
  readonly functionNames: Readonly<Record<ReaderScriptName, string>>;
} {
  const scripts = Object.entries(readerScripts) as [ReaderScriptName, LuaScript][];
  const hash = createHash('sha1')
    .update(scripts.map(([, script]) => script.source).join('\0'))
    .digest('hex')
    .slice(0, 12);
  const name = `tablecache_${hash}`;
  const functionName = (script: ReaderScriptName) => `${name}_${script}`;
  const parts = [`#!lua name=${name}`];
  for (const [scriptName, script] of scripts) {
    // A script body reads the globals KEYS and ARGV; as a function they become its parameters.
    const body = script.source.replace(/^#!lua[^\n]*\n/, '');
    parts.push(
      `local function ${scriptName}(KEYS, ARGV)\n${body}\nend`,
      `redis.register_function{function_name='${functionName(scriptName)}', callback=${scriptName}, flags={'no-writes'}}`,
    );
  }
  const functionNames = Object.fromEntries(scripts.map(([scriptName]) => [scriptName, functionName(scriptName)])) as Record<ReaderScriptName, string>;
  return { name, source: `${parts.join('\n')}\n`, functionNames };
}

// The readers' side of the protocol: what follows builds the reader scripts'
// KEYS and ARGV, reads their replies by name, and turns their error replies
// into typed errors. Nothing outside it indexes a reader reply.

/** Reader scripts' KEYS: the meta hash (get, range, coverage); info also reads the lease key. */
export function readerScriptKeys(keys: TableKeys, name: ReaderScriptName): string[] {
  return name === 'info' ? [keys.meta, keys.lease] : [keys.meta];
}

/**
 * The FCALL_RO command of a reader script in the function library, with
 * Buffer replies. Built, not sent: the caller sends it and uses the
 * command's own promise, so a read allocates no promise of its own.
 */
export function readerFunctionCommand(name: ReaderScriptName, keys: readonly string[], args: readonly RedisArgument[], keyPrefix: string | undefined): Command {
  // Lower case: ioredis's Cluster routes a command to replicas only when it finds the name in its
  // (lower-case) command table flagged read-only; `readOnly` marks it for ioredis versions that check that.
  return new Command('fcall_ro', [readerFunctionLibrary.functionNames[name], keys.length, ...keys, ...args], { keyPrefix, replyEncoding: null, readOnly: true });
}

/** Runs a reader script as a read-only script (EVALSHA_RO): where the function library is missing or not allowed. */
export function runReaderScript(redis: ScriptConnection, name: ReaderScriptName, keys: readonly string[], args: readonly RedisArgument[]): Promise<unknown> {
  return readerScripts[name].run(redis, keys, args, true);
}

/** Whether a failed FCALL_RO means the function library is missing (a Redis restart, another version) or not granted to this user. */
export function isFunctionUnavailable(error: unknown): boolean {
  return error instanceof Error && /Function not found|NOPERM.*fcall_ro/i.test(error.message);
}

/** Whether an error is one of the replies reader scripts raise on purpose (`TC_…`), which {@link readerReplyError} maps. */
export function isReaderReplyError(error: unknown): error is Error {
  return error instanceof Error && error.message.startsWith('TC_');
}

/** ARGV of readerGet.lua for one primary-key field. */
export function getArgs(codecId: string, field: string): string[] {
  return [LAYOUT_FORMAT_VERSION, codecId, field];
}

/** ARGV of readerGet.lua for several primary-key fields. */
export function getManyArgs(codecId: string, fields: readonly string[]): string[] {
  return [LAYOUT_FORMAT_VERSION, codecId, ...fields];
}

/** The writer step a readerGet.lua reply was read at. */
export function getReplyStep(reply: unknown): number {
  return Number((reply as Buffer[])[0]);
}

/** The `i`th (0-based) record of a readerGet.lua reply, null when there is none. */
export function getReplyRecord(reply: unknown, i: number): Buffer | null {
  return (reply as (Buffer | null)[])[i + 1] ?? null;
}

/** Every record of a readerGet.lua reply, in the order of the fields asked. */
export function getReplyRecords(reply: unknown): (Buffer | null)[] {
  return (reply as (Buffer | null)[]).slice(1);
}

/** What a range read asks for. */
export interface RangeParams {
  readonly codecId: string;
  readonly indexName: string;
  /** The step whose coverage the caller has (null: none yet); absent: the caller wants no coverage. */
  readonly coverageStep?: string | null;
  /** Each record's field before it (to name a record that does not decode). */
  readonly withFields?: boolean;
  readonly intervals: readonly Interval[];
}

const describeRangeBound = () => 'A range bound';

/**
 * ARGV of readerRange.lua.
 *
 * @throws {@link InvalidArgumentError} for a NaN bound.
 */
export function rangeArgs(params: RangeParams): string[] {
  const coverage = params.coverageStep === undefined ? '' : (params.coverageStep ?? '-');
  const args = [LAYOUT_FORMAT_VERSION, params.codecId, params.indexName, coverage, params.withFields ? '1' : '0'];
  for (const interval of params.intervals) {
    if (interval.isEmpty) continue;
    args.push(scoreArgument(interval.ge, describeRangeBound), scoreArgument(interval.lt, describeRangeBound));
  }
  return args;
}

/** The coverage part of a {@link CoverageReply}: the current step, and the coverage JSON unless the caller has that step's. */
export interface CoverageReply {
  readonly step: string;
  readonly json: Buffer | null;
}

/** A readerRange.lua reply: the coverage when it was asked for, and the records. */
export interface RangeReply {
  readonly coverage: CoverageReply | null;
  readonly records: readonly (Buffer | null)[];
}

/** Reads a readerRange.lua reply (without fields) of a read made with or without `coverageStep`. */
export function rangeReply(reply: unknown, withCoverage: boolean): RangeReply {
  const values = reply as (Buffer | null)[];
  if (!withCoverage) return { coverage: null, records: values };
  return { coverage: { step: String(values[0]), json: values[1] ?? null }, records: values.slice(2) };
}

/** Reads a readerRange.lua reply made `withFields` (and no coverage): each record's field and bytes. */
export function rangeReplyWithFields(reply: unknown): { field: string; bytes: Buffer | null }[] {
  const values = reply as (Buffer | null)[];
  const entries: { field: string; bytes: Buffer | null }[] = [];
  for (let i = 0; i < values.length; i += 2) entries.push({ field: String(values[i]), bytes: values[i + 1] ?? null });
  return entries;
}

/** ARGV of readerCoverage.lua. */
export function coverageArgs(coverageStep: string | null): string[] {
  return [LAYOUT_FORMAT_VERSION, coverageStep ?? ''];
}

/** Reads a readerCoverage.lua reply. */
export function coverageReply(reply: unknown): CoverageReply {
  const values = reply as (Buffer | null)[];
  return { step: String(values[0]), json: values[1] ?? null };
}

/** ARGV of readerInfo.lua. */
export function infoArgs(): string[] {
  return [LAYOUT_FORMAT_VERSION];
}

/** A readerInfo.lua reply; absent values are null. */
export interface InfoReply {
  /** `unloaded`: no generation is published; `format`: it is, in another layout format. */
  readonly status: 'ok' | 'unloaded' | 'format';
  readonly format: string | null;
  readonly generation: number | null;
  readonly codec: string | null;
  readonly indexNames: readonly string[];
  readonly step: number;
  /** ms since the epoch. */
  readonly refreshedAt: number | null;
  readonly loadedAt: number | null;
  readonly recordCount: number;
  readonly writerId: string | null;
  readonly leaseExpiresInMs: number;
}

/** Reads a readerInfo.lua reply. */
export function infoReply(reply: unknown): InfoReply {
  const values = reply as (Buffer | number | null)[];
  const text = (i: number) => (values[i] === null || values[i] === undefined ? null : String(values[i]));
  const indexes = text(4);
  const generation = text(2);
  const refreshedAt = text(6);
  const loadedAt = text(7);
  return {
    status: text(0) as InfoReply['status'],
    format: text(1),
    generation: generation === null ? null : Number(generation),
    codec: text(3),
    indexNames: indexes === null ? [] : (JSON.parse(indexes) as string[]),
    step: Number(text(5) ?? 0),
    refreshedAt: refreshedAt === null ? null : Number(refreshedAt),
    loadedAt: loadedAt === null ? null : Number(loadedAt),
    recordCount: Number(values[8]),
    writerId: text(9),
    leaseExpiresInMs: Number(values[10] ?? 0),
  };
}

/** What an error reply's message names: the table read and the codec the reader decodes. */
export interface ReaderReplyContext {
  readonly keys: TableKeys;
  readonly codecId: string;
}

/**
 * The typed error for an error reply a reader script raises on purpose, by
 * its code: `TC_UNLOADED` ({@link NotLoadedError}), `TC_FORMAT` and
 * `TC_CODEC` ({@link StorageFormatError}), `TC_NOINDEX`
 * ({@link InvalidArgumentError}); any other as an unexpected reply.
 */
export function readerReplyError(error: Error, context: ReaderReplyContext): Error {
  const table = context.keys.table;
  const space = error.message.indexOf(' ');
  const code = space < 0 ? error.message : error.message.slice(0, space);
  const detail = space < 0 ? '' : error.message.slice(space + 1);
  switch (code) {
    case 'TC_UNLOADED':
      return new NotLoadedError(`Table "${table}" has not been loaded yet: no writer has published data under ${context.keys.meta}.`);
    case 'TC_FORMAT':
      return formatError(table, detail);
    case 'TC_CODEC':
      return new StorageFormatError(
        `Table "${table}" is encoded with codec "${detail}", but this reader decodes "${context.codecId}". ` +
          'Open the reader with the codec the writer uses, or reload the cache with a writer that uses this one.',
      );
    case 'TC_NOINDEX': {
      // "<the index name as JSON> <the table's index names as JSON>"
      const [, name, names] = /^("(?:[^"\\]|\\.)*") (.*)$/s.exec(detail) ?? [];
      return new InvalidArgumentError(`Table "${table}" has no index ${name ?? '(unknown)'}; its indexes are ${(JSON.parse(names ?? '[]') as string[]).join(', ')}.`);
    }
    default:
      return new StorageFormatError(`Unexpected reply "${error.message}" reading table "${table}".`);
  }
}

/** The error for data stored in a key layout format this reader does not know. */
export function formatError(table: string, format: string): StorageFormatError {
  return new StorageFormatError(
    `Table "${table}" is stored in key layout format "${format}", but this reader knows format ${LAYOUT_FORMAT_VERSION}. ` +
      'Reload the cache with a writer of this version (or use a reader that matches the writer).',
  );
}
