import { LuaScript } from '../luaScript.ts';

/** The Lua scripts of the writer; each file's header states its KEYS, ARGV and atomicity. */
export const writerScripts = {
  allocateKeyGroup: LuaScript.fromFile(import.meta.url, 'allocateKeyGroup'),
  dropKeyGroups: LuaScript.fromFile(import.meta.url, 'dropKeyGroups'),
  putRecords: LuaScript.fromFile(import.meta.url, 'putRecords'),
  deleteRecords: LuaScript.fromFile(import.meta.url, 'deleteRecords'),
  readPage: LuaScript.fromFile(import.meta.url, 'readPage'),
  stagePut: LuaScript.fromFile(import.meta.url, 'stagePut'),
  stageDiscard: LuaScript.fromFile(import.meta.url, 'stageDiscard'),
  mergeStep: LuaScript.fromFile(import.meta.url, 'mergeStep'),
  applyChanges: LuaScript.fromFile(import.meta.url, 'applyChanges'),
  publishGeneration: LuaScript.fromFile(import.meta.url, 'publishGeneration'),
  leaseAcquire: LuaScript.fromFile(import.meta.url, 'leaseAcquire'),
  leaseRenew: LuaScript.fromFile(import.meta.url, 'leaseRenew'),
  leaseRelease: LuaScript.fromFile(import.meta.url, 'leaseRelease'),
} as const;
