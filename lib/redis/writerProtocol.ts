import type { Redis } from 'ioredis';
import { TablecacheError } from '../core/errors.ts';
import { LAYOUT_FORMAT_VERSION, MetaField, type TableKeys, generationGroup, keyGroupSuffixes, stagingGroup } from './keyLayout.ts';
import type { LuaScript, RedisArgument, ScriptConnection } from './luaScript.ts';
import { IncompleteGenerationError, toTablecacheError } from './redisErrors.ts';
import { readerFunctionLibrary } from './scripts/readerScripts.ts';
import { writerScripts } from './scripts/writerScripts.ts';

/**
 * The writer's side of the Redis protocol: one typed function per write
 * script, with named parameters, KEYS built from the key layout, the fence
 * token prepended, error replies turned into typed errors, and named replies.
 * Each script file's header states the KEYS and ARGV built here
 * (docs/redis-key-layout.md documents them for other languages). Nothing
 * outside this module builds a write script's arguments or reads its reply
 * by position; the readers' side is scripts/readerScripts.ts.
 */

/** Who writes: the connection, the table's keys and index names, and the fence token of its lease. */
export interface WriterSession {
  readonly redis: ScriptConnection;
  readonly keys: TableKeys;
  /** The index names, in the order scripts take one score or sorted set per index. */
  readonly indexNames: readonly string[];
  readonly fence: string;
  /** The error to throw when a script refused the fence token (`dataLost`: the token is gone with the table's keys). */
  leaseLost(detail: string, dataLost: boolean): Error;
}

/**
 * Records as write scripts take them: per record its primary-key field, its
 * encoded bytes, and one score per index (in `indexNames` order), flattened.
 */
export interface RecordArguments {
  readonly count: number;
  readonly values: readonly RedisArgument[];
}

// What the write scripts (checkFence.lua) report when the meta hash has no fence token any more (Lua's HGET of nothing is false).
const FENCE_GONE = /fence token is now (false|nil)$/;
const LEASE_LOST = 'TC_LEASE_LOST ';
// publishGeneration.lua's refusal: the records hash's count, then each index's.
const INCOMPLETE = /TC_GENERATION_INCOMPLETE ([\d ]+)$/;

/** Runs a write script with the session's fence token as its first argument (checkFence.lua), mapping errors. */
async function write(session: WriterSession, script: LuaScript, keys: readonly string[], args: readonly RedisArgument[], doing: string): Promise<unknown> {
  try {
    return await script.run(session.redis, keys, [session.fence, ...args]);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith(LEASE_LOST)) {
      const detail = error.message.slice(LEASE_LOST.length);
      throw session.leaseLost(detail, FENCE_GONE.test(detail));
    }
    throw toTablecacheError(error, `${doing} in table "${session.keys.table}"`);
  }
}

function generationKeys(session: WriterSession, generation: number): string[] {
  return [session.keys.meta, ...session.keys.generationKeys(generation, session.indexNames)];
}

/** Keys of stagePut.lua and stageDiscard.lua: meta, the generation's records, then the session's keys. */
function stagingScriptKeys(session: WriterSession, generation: number, staging: number): string[] {
  return [session.keys.meta, session.keys.records(generation), ...session.keys.stagingKeys(staging, session.indexNames)];
}

/** Starts a key group (allocateKeyGroup.lua), listed in the `owned` hash before any of its keys exists; returns its id. */
export async function allocateKeyGroup(session: WriterSession, kind: 'generation' | 'staging'): Promise<number> {
  const args = [kind === 'generation' ? 'g' : 's', session.keys.base, ...keyGroupSuffixes(kind, session.indexNames)];
  const doing = kind === 'generation' ? 'starting a generation' : 'starting a scratch session';
  return Number(await write(session, writerScripts.allocateKeyGroup, [session.keys.meta, session.keys.owned], args, doing));
}

/** A key group to drop: a generation or a scratch session, by id, or a group id as listed in the `owned` hash. */
export type KeyGroup = { readonly generation: number } | { readonly staging: number } | { readonly listed: string };

function groupId(group: KeyGroup): string {
  if ('generation' in group) return generationGroup(group.generation);
  if ('staging' in group) return stagingGroup(group.staging);
  return group.listed;
}

/** Deletes key groups no reader uses (dropKeyGroups.lua); returns how many existed. `doing` names the purpose in errors. */
export async function dropKeyGroups(session: WriterSession, params: { groups: readonly KeyGroup[]; doing: string }): Promise<number> {
  return Number(await write(session, writerScripts.dropKeyGroups, [session.keys.meta, session.keys.owned], params.groups.map(groupId), params.doing));
}

/** Stores a batch of records straight into a generation (putRecords.lua); returns how many were new there (not replacing a record). */
export async function putRecords(session: WriterSession, params: { generation: number; records: RecordArguments }): Promise<number> {
  const args = [params.records.count, ...params.records.values];
  return Number(await write(session, writerScripts.putRecords, generationKeys(session, params.generation), args, 'storing records'));
}

/** Deletes records of a generation by primary-key field (deleteRecords.lua); returns how many existed. */
export async function deleteRecords(session: WriterSession, params: { generation: number; fields: readonly string[] }): Promise<number> {
  return Number(await write(session, writerScripts.deleteRecords, generationKeys(session, params.generation), params.fields, 'deleting records'));
}

/** Stages records in a scratch session (stagePut.lua); returns how the record count changes at the merge. */
export async function stagePut(session: WriterSession, params: { generation: number; staging: number; records: RecordArguments }): Promise<number> {
  const args = [params.records.count, ...params.records.values];
  return Number(await write(session, writerScripts.stagePut, stagingScriptKeys(session, params.generation, params.staging), args, 'staging records'));
}

/**
 * Stages deletions in a scratch session (stageDiscard.lua): of the
 * generation's records (`live`), or withdraws staged puts (`staged`).
 * Returns how the record count changes at the merge.
 */
export async function stageDiscard(
  session: WriterSession,
  params: { generation: number; staging: number; mode: 'live' | 'staged'; fields: readonly string[] },
): Promise<number> {
  const keys = stagingScriptKeys(session, params.generation, params.staging);
  return Number(await write(session, writerScripts.stageDiscard, keys, [params.mode, ...params.fields], 'staging deletions'));
}

/** Parameters of {@link mergeStep}. */
export interface MergeStepParams {
  readonly generation: number;
  readonly staging: number;
  /** Staged changes to apply in this call at most. */
  readonly budget: number;
  /** The first step publishes: it bumps the step, sets the coverage and the overlay. */
  readonly first: boolean;
  /** Whether the generation is the one readers read. */
  readonly live: boolean;
  /** The record count change computed while staging (read on the first step). */
  readonly delta: number;
  /** Coverage JSON; "" leaves it. */
  readonly coverage: string;
}

/** Applies up to `budget` staged changes of a scratch session (mergeStep.lua); returns how many remain. */
export async function mergeStep(session: WriterSession, params: MergeStepParams): Promise<number> {
  const keys = [
    session.keys.meta,
    session.keys.owned,
    session.keys.records(params.generation),
    session.keys.stagedRecords(params.staging),
    session.keys.stagedDeletes(params.staging),
    ...session.indexNames.map((name) => session.keys.index(params.generation, name)),
    ...session.indexNames.map((name) => session.keys.stagedIndex(params.staging, name)),
  ];
  const args = [params.budget, params.first ? '1' : '0', params.live ? '1' : '0', params.staging, params.delta, params.coverage, Date.now()];
  return Number(await write(session, writerScripts.mergeStep, keys, args, 'merging scratch space'));
}

/** Applies a held-back scratch session to a generation in one atomic call (applyChanges.lua): deletions first, then puts. */
export async function applyChanges(
  session: WriterSession,
  params: { generation: number; live: boolean; coverage: string; deletions: readonly string[]; puts: RecordArguments },
): Promise<void> {
  const args = [params.live ? '1' : '0', params.coverage, Date.now(), params.deletions.length, ...params.deletions, params.puts.count, ...params.puts.values];
  await write(session, writerScripts.applyChanges, generationKeys(session, params.generation), args, 'applying scratch changes');
}

/**
 * Switches readers to a generation (publishGeneration.lua), with this
 * layout's format, the codec and the coverage; returns the generation
 * readers read before, or null. `records`, when known, is the count the
 * writer left in the generation: the script publishes nothing unless the
 * records hash and every index hold exactly that many.
 *
 * @throws {@link IncompleteGenerationError} when they do not (Redis evicted some of the generation while it was written).
 */
export async function publishGeneration(
  session: WriterSession,
  params: { generation: number; codec: string; coverage: string; records: number | null },
): Promise<number | null> {
  const keys = generationKeys(session, params.generation);
  const args = [
    String(params.generation),
    LAYOUT_FORMAT_VERSION,
    params.codec,
    JSON.stringify(session.indexNames),
    params.coverage,
    String(Date.now()),
    params.records === null ? '' : String(params.records),
  ];
  let previous: unknown;
  try {
    previous = await write(session, writerScripts.publishGeneration, keys, args, 'publishing the loaded generation');
  } catch (error) {
    const stored = error instanceof TablecacheError && error.cause instanceof Error ? INCOMPLETE.exec(error.cause.message) : null;
    if (stored === null) throw error;
    throw new IncompleteGenerationError(session.keys.table, params.records!, stored[1]!.split(' ').map(Number));
  }
  return previous === null ? null : Number(String(previous));
}

/** Saves the change source's position beside `generation` (saveCapturePosition.lua); false when another generation is live. */
export async function saveCapturePosition(session: WriterSession, params: { generation: number; position: string }): Promise<boolean> {
  const saved = await write(session, writerScripts.saveCapturePosition, [session.keys.meta], [String(params.generation), params.position], 'saving the capture position');
  return Number(saved) === 1;
}

/** The change source's position saved with the live generation, or null (none saved, or saved with another generation). */
export async function readCapturePosition(redis: ScriptConnection, keys: TableKeys): Promise<{ readonly generation: number; readonly position: string } | null> {
  const [generation, saved] = await redis.hmget(keys.meta, MetaField.generation, MetaField.capturePosition);
  if (generation == null || saved == null) return null;
  const separator = saved.indexOf('@');
  if (separator < 0 || saved.slice(0, separator) !== generation) return null;
  return { generation: Number(generation), position: saved.slice(separator + 1) };
}

/** One record of a {@link readPage} reply. */
export interface PageEntry {
  /** Which of the page's intervals (0-based) it lies in. */
  readonly interval: number;
  readonly field: string;
  /** The encoded record; null when the index lists a field the records hash lacks. */
  readonly bytes: Buffer | null;
}

/**
 * Reads one page of an index (readPage.lua, read-only): records whose score
 * lies in any of the intervals, given as [ge, lt) score texts. `done` of the
 * intervals, a prefix, were read to their end.
 */
export async function readPage(
  redis: ScriptConnection,
  keys: TableKeys,
  params: { index: string; records: string; pageSize: number; skip: number; bounds: readonly (readonly [string, string])[] },
): Promise<{ done: number; entries: PageEntry[] }> {
  let reply: (Buffer | number | null)[];
  try {
    reply = (await writerScripts.readPage.run(redis, [params.index, params.records], [params.pageSize, params.skip, ...params.bounds.flat()])) as typeof reply;
  } catch (error) {
    throw toTablecacheError(error, `reading table "${keys.table}"`);
  }
  const entries: PageEntry[] = [];
  for (let i = 1; i < reply.length; i += 3) {
    entries.push({ interval: Number(reply[i]) - 1, field: String(reply[i + 1]), bytes: reply[i + 2] as Buffer | null });
  }
  return { done: Number(reply[0]), entries };
}

/** What {@link leaseAcquire} found: the lease taken with a new fence token, or held by another writer. */
export type LeaseAcquireReply = { readonly taken: true; readonly fence: string } | { readonly taken: false; readonly holder: string; readonly remainingMs: number };

/** Takes the table's writer lease if free, drawing a new fence token (leaseAcquire.lua). */
export async function leaseAcquire(redis: ScriptConnection, keys: TableKeys, params: { writerId: string; ttlMs: number }): Promise<LeaseAcquireReply> {
  const reply = (await lease(() => writerScripts.leaseAcquire.run(redis, [keys.lease, keys.meta], [params.writerId, params.ttlMs]), 'taking the writer lease')) as [
    number,
    Buffer | number,
    number?,
  ];
  if (reply[0] === 1) return { taken: true, fence: String(reply[1]) };
  return { taken: false, holder: String(reply[1]), remainingMs: Math.max(0, Number(reply[2] ?? 0)) };
}

/**
 * Extends the lease (leaseRenew.lua): `held` when it is still this writer's,
 * `taken` when another writer took it, `gone` when Redis lost the lease and
 * the table's fence token with it. Errors are ioredis's, unmapped (a renewal is retried).
 */
export async function leaseRenew(redis: ScriptConnection, keys: TableKeys, params: { writerId: string; ttlMs: number; fence: string }): Promise<'held' | 'taken' | 'gone'> {
  const held = await writerScripts.leaseRenew.run(redis, [keys.lease, keys.meta], [params.writerId, params.ttlMs, params.fence]);
  if (held === 1) return 'held';
  return held === -1 ? 'gone' : 'taken';
}

/** Gives the lease up if this writer still holds it (leaseRelease.lua). */
export async function leaseRelease(redis: ScriptConnection, keys: TableKeys, params: { writerId: string }): Promise<void> {
  await lease(() => writerScripts.leaseRelease.run(redis, [keys.lease], [params.writerId]), 'releasing the writer lease');
}

async function lease<T>(call: () => Promise<T>, doing: string): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toTablecacheError(error, doing);
  }
}

/** The metadata a new writer reads before it recovers the table. */
export interface PublishedTable {
  /** The layout format the live data was written in; null before any load. */
  readonly format: string | null;
  readonly generation: number | null;
  readonly codec: string | null;
  /** Null before any load. */
  readonly indexNames: readonly string[] | null;
  /** The scratch session a cut-off merge left readers looking at through the overlay. */
  readonly overlay: number | null;
  /** The writer that took the lease last. */
  readonly writer: string | null;
}

/** Reads what the table's meta hash says about the live data and its writer. */
export async function readPublishedTable(redis: ScriptConnection, keys: TableKeys): Promise<PublishedTable> {
  const [format, generation, codec, indexes, overlay, writer] = await redis.hmget(
    keys.meta,
    MetaField.format,
    MetaField.generation,
    MetaField.codec,
    MetaField.indexes,
    MetaField.overlay,
    MetaField.writer,
  );
  return {
    format: format ?? null,
    generation: generation == null ? null : Number(generation),
    codec: codec ?? null,
    indexNames: indexes == null ? null : (JSON.parse(indexes) as string[]),
    overlay: overlay == null ? null : Number(overlay),
    writer: writer ?? null,
  };
}

/** The writer that holds the table's lease per its meta hash (null when Redis lost it). */
export async function readTableWriter(redis: ScriptConnection, keys: TableKeys): Promise<string | null> {
  return redis.hget(keys.meta, MetaField.writer);
}

/** The writer holding the table's lease key, or null. */
export async function readLeaseHolder(redis: ScriptConnection, keys: TableKeys): Promise<string | null> {
  return redis.get(keys.lease);
}

/** The ids of the key groups (generations, scratch sessions) listed in the `owned` hash. */
export async function listKeyGroups(redis: ScriptConnection, keys: TableKeys): Promise<string[]> {
  return redis.hkeys(keys.owned);
}

/**
 * How far a cut-off merge of a scratch session got: whether the overlay
 * names the session (readers see it applied) and whether the session is
 * still listed in the `owned` hash (not completed).
 */
export async function readMergeProgress(redis: ScriptConnection, keys: TableKeys, staging: number): Promise<{ overlaid: boolean; listed: boolean }> {
  const [overlay, listed] = await Promise.all([redis.hget(keys.meta, MetaField.overlay), redis.hexists(keys.owned, stagingGroup(staging))]);
  return { overlaid: overlay === String(staging), listed: listed === 1 };
}

/** What {@link readGenerationCounts} read. */
export interface GenerationCounts {
  /** The live generation at the time of the read. */
  readonly liveGeneration: number | null;
  /** `meta.count`: how many records the live generation must hold (scripts/liveRecordCount.lua); null when unset. */
  readonly liveRecordCount: number | null;
  /** The generation's records hash. */
  readonly records: number;
  /** Each index's sorted set, in `indexNames` order. */
  readonly indexes: number[];
}

/**
 * The record counts of a generation, read in one pipeline: its records hash,
 * each index's sorted set, and what the meta hash says of the live one.
 */
export async function readGenerationCounts(redis: ScriptConnection, keys: TableKeys, generation: number, indexNames: readonly string[]): Promise<GenerationCounts> {
  const reads = redis.pipeline().hmget(keys.meta, MetaField.generation, MetaField.count).hlen(keys.records(generation));
  for (const name of indexNames) reads.zcard(keys.index(generation, name));
  const replies = (await reads.exec()) ?? [];
  const failure = replies.find(([error]) => error !== null);
  if (failure) throw failure[0];
  const [meta, records, ...indexes] = replies.map(([, value]) => value);
  const [live, count] = meta as (string | null)[];
  return {
    liveGeneration: live == null ? null : Number(live),
    liveRecordCount: count == null ? null : Number(count),
    records: Number(records),
    indexes: indexes.map(Number),
  };
}

/**
 * Loads the readers' function library on one node (a primary; a Cluster's
 * masters one by one): readers call FCALL_RO, cheaper per read than
 * EVALSHA_RO, and fall back to scripts without it. Without `replace`,
 * resolves false where the node has the library already (Redis refuses to
 * load it twice), true when it loaded it.
 */
export async function loadReaderFunctionLibrary(node: Redis, replace: boolean): Promise<boolean> {
  try {
    await node.call('function', 'load', ...(replace ? ['replace'] : []), readerFunctionLibrary.source);
    return true;
  } catch (error) {
    if (!replace && error instanceof Error && /already exists/i.test(error.message)) return false;
    throw error;
  }
}
