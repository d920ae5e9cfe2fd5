import { createHash } from 'node:crypto';
import { LuaScript } from '../luaScript.ts';
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
