import { connect, type ConnectionOptions } from 'node:tls';
import type { Redis } from 'ioredis';

/**
 * Why connecting through Sentinel over TLS fails, in words. ioredis drops
 * the error of its connections to the sentinels (a certificate the CA did not
 * sign, a sentinel that does not speak TLS) and reports only "All sentinels
 * are unreachable … Last error: Connection is closed", which names neither
 * TLS nor the certificate. A handshake of our own with each sentinel, with
 * the client's `sentinelTLS` options, finds the cause.
 */

/** ioredis's error after every sentinel failed once (then it starts over, or gives up). */
export const SENTINELS_UNREACHABLE = /^All sentinels are unreachable/;

/** How long one probe handshake may take. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Makes a TLS handshake with each sentinel of `redis` (a Sentinel client
 * whose sentinel connections use TLS) and returns the first failure of a
 * handshake whose TCP connection was made (`TLS with sentinel host:port
 * failed: self-signed certificate in certificate chain`), or `undefined`
 * when every handshake succeeds, no sentinel accepts a TCP connection, or the
 * client does not use TLS with its sentinels.
 */
export async function sentinelTlsFailure(redis: Redis): Promise<Error | undefined> {
  const { sentinels, sentinelTLS } = redis.options;
  if (sentinels === undefined || sentinelTLS === undefined) return undefined;
  const failures = await Promise.all(sentinels.map(({ host = 'localhost', port = 26379 }) => handshakeFailure(host, port, sentinelTLS)));
  return failures.find((failure) => failure !== undefined);
}

function handshakeFailure(host: string, port: number, options: ConnectionOptions): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let tcpConnected = false;
    const socket = connect({ ...options, host, port, timeout: PROBE_TIMEOUT_MS });
    const done = (failure: Error | undefined) => {
      socket.destroy();
      resolve(failure);
    };
    socket.once('connect', () => {
      tcpConnected = true;
    });
    socket.once('secureConnect', () => done(undefined));
    socket.once('timeout', () => done(undefined));
    socket.once('error', (error: Error) => done(tcpConnected ? new Error(`TLS with sentinel ${host}:${port} failed: ${error.message.replace(/\.$/, '')}`, { cause: error }) : undefined));
  });
}

/**
 * Calls `onFailure` with the cause ({@link sentinelTlsFailure}) whenever a
 * round over the sentinels of `redis` failed and a TLS handshake with one of
 * them fails too; one probe at a time. Returns the function that stops
 * watching.
 */
export function watchSentinelTls(redis: Redis, onFailure: (failure: Error) => void): () => void {
  if (redis.options.sentinels === undefined || redis.options.sentinelTLS === undefined) return () => {};
  let probing = false;
  let stopped = false;
  const onError = (error: Error) => {
    if (probing || !SENTINELS_UNREACHABLE.test(error.message)) return;
    probing = true;
    void sentinelTlsFailure(redis).then((failure) => {
      probing = false;
      if (failure !== undefined && !stopped) onFailure(failure);
    });
  };
  redis.on('error', onError);
  return () => {
    stopped = true;
    redis.off('error', onError);
  };
}
