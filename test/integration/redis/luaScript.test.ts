import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LuaScript } from '../../../lib/redis/luaScript.ts';
import { withRedis } from '../../support/redis.ts';

describe('LuaScript', () => {
  it('sends its source once when Redis does not know it yet, then runs by SHA1', async () => {
    await withRedis(async (redis) => {
      const script = new LuaScript('echo', `-- ${randomBytes(8).toString('hex')}\nreturn ARGV[1]`);
      expect(await redis.script('EXISTS', script.sha)).toEqual([0]);
      expect(String(await script.run(redis, [], ['hello']))).toBe('hello');
      expect(await redis.script('EXISTS', script.sha)).toEqual([1]);
      expect(String(await script.run(redis, [], ['again'], true))).toBe('again');
    });
  });

  it('runs read-only with EVALSHA_RO, which refuses a script that writes', async () => {
    await withRedis(async (redis) => {
      const script = new LuaScript('writes', `-- ${randomBytes(8).toString('hex')}\nreturn redis.call('SET', KEYS[1], 'x')`);
      await expect(script.run(redis, [`tctest:lua:${randomBytes(4).toString('hex')}`], [], true)).rejects.toThrow(/Write commands are not allowed/);
    });
  });
});
