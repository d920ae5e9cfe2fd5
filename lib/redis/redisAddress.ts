import { InvalidArgumentError } from '../core/errors.ts';

/** Where a `redis://` or `rediss://` URL points, and the user, password and TLS it implies. */
export interface RedisAddress {
  /** Without the brackets of an IPv6 literal (`redis://[::1]:7000` is `::1`), as `net.connect` wants it. */
  readonly host: string;
  /** 6379 when the URL names none. */
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  /** `rediss:` */
  readonly tls: boolean;
}

/**
 * Parses a Redis URL (a cluster seed, a sentinel): the reader's and the
 * daemon's connections read seeds and sentinels the same way.
 *
 * @param what Names the URL in the error, e.g. `A cluster node`.
 * @throws {@link InvalidArgumentError} when `url` is not a URL or not `redis://` / `rediss://`.
 */
export function redisAddress(url: string, what: string): RedisAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`${what} "${url}" is not a URL; write redis://host:port (rediss:// for TLS).`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    // Not the URL itself: it may hold a password.
    throw new InvalidArgumentError(`${what} has the scheme "${parsed.protocol}"; write redis://host:port (rediss:// for TLS).`);
  }
  const username = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    ...(username === '' ? {} : { username }),
    ...(password === '' ? {} : { password }),
    tls: parsed.protocol === 'rediss:',
  };
}
