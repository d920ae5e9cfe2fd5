import { describe, expect, it } from 'vitest';
import { redisAddress } from '../../../lib/redis/redisAddress.ts';

describe('redisAddress', () => {
  it('reads host, port (6379 by default), decoded user and password, and TLS from rediss://', () => {
    expect(redisAddress('redis://cache', 'A node')).toEqual({ host: 'cache', port: 6379, tls: false });
    expect(redisAddress('rediss://us%40er:p%3Ass@cache:7000', 'A node')).toEqual({ host: 'cache', port: 7000, username: 'us@er', password: 'p:ss', tls: true });
  });

  it('gives an IPv6 literal without its brackets, as a socket connects to it', () => {
    expect(redisAddress('redis://[::1]:7000', 'A node')).toMatchObject({ host: '::1', port: 7000 });
  });

  it('refuses what is not a redis:// or rediss:// URL, naming it', () => {
    expect(() => redisAddress('cache:6379', 'A sentinel')).toThrow('A sentinel has the scheme "cache:"; write redis://host:port (rediss:// for TLS).');
    expect(() => redisAddress('not a url', 'A cluster node')).toThrow(/A cluster node "not a url" is not a URL/);
  });
});
