import { describe, expect, it } from 'vitest';
import { connectFailure } from '../../../lib/redis/redisErrors.ts';

describe('connectFailure', () => {
  it("takes the cause from ioredis's last error event over connect()'s bare \"Connection is closed.\"", () => {
    const closed = new Error('Connection is closed.');
    expect(connectFailure(closed, new Error('WRONGPASS invalid username-password pair or user is disabled.'))).toEqual({
      cause: 'WRONGPASS invalid username-password pair or user is disabled',
      kind: 'credentials',
    });
    expect(connectFailure(closed, undefined)).toEqual({ cause: 'Connection is closed', kind: 'unreachable' });
  });

  it('tells certificate problems, refused logins and unreachable servers apart', () => {
    const kind = (message: string) => connectFailure(new Error(message), undefined).kind;
    expect(kind('self-signed certificate in certificate chain')).toBe('tls');
    expect(kind('unable to verify the first certificate')).toBe('tls');
    expect(kind("Hostname/IP does not match certificate's altnames: Host: x. is not in the cert's altnames: DNS:localhost")).toBe('tls');
    expect(kind('NOAUTH Authentication required.')).toBe('credentials');
    expect(kind('connect ECONNREFUSED 127.0.0.1:1')).toBe('unreachable');
  });
});
