import { LuaScript } from '../luaScript.ts';
import { luaSource } from './luaSources.ts';

/** The Lua scripts of the writer; each file's header states its KEYS, ARGV and atomicity. */
export const writerScripts = {
  allocateKeyGroup: new LuaScript('allocateKeyGroup', luaSource('allocateKeyGroup')),
  dropKeyGroups: new LuaScript('dropKeyGroups', luaSource('dropKeyGroups')),
  putRecords: new LuaScript('putRecords', luaSource('putRecords')),
  deleteRecords: new LuaScript('deleteRecords', luaSource('deleteRecords')),
  readPage: new LuaScript('readPage', luaSource('readPage')),
  stagePut: new LuaScript('stagePut', luaSource('stagePut')),
  stageDiscard: new LuaScript('stageDiscard', luaSource('stageDiscard')),
  mergeStep: new LuaScript('mergeStep', luaSource('mergeStep')),
  applyChanges: new LuaScript('applyChanges', luaSource('applyChanges')),
  publishGeneration: new LuaScript('publishGeneration', luaSource('publishGeneration')),
  saveCapturePosition: new LuaScript('saveCapturePosition', luaSource('saveCapturePosition')),
  leaseAcquire: new LuaScript('leaseAcquire', luaSource('leaseAcquire')),
  leaseRenew: new LuaScript('leaseRenew', luaSource('leaseRenew')),
  leaseRelease: new LuaScript('leaseRelease', luaSource('leaseRelease')),
} as const;
