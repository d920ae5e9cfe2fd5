import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../daemon/config/configError.ts';
import { HealthServer } from '../../../daemon/http/healthServer.ts';
import type { DaemonReadiness } from '../../../daemon/daemonReadiness.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
let readiness: DaemonReadiness = { ready: true, phase: 'running', reasons: [], tables: { users: { loaded: true } } };
let metricsText: () => Promise<string> = async () => 'tablecache_ready 1\n';
const servers: HealthServer[] = [];

async function start(port = 0): Promise<HealthServer> {
  const server = await HealthServer.start({
    host: '127.0.0.1',
    port,
    daemon: { readiness: () => readiness },
    metrics: { metrics: () => metricsText(), contentType: 'text/plain; version=0.0.4; charset=utf-8' },
    logger: silent,
  });
  servers.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('HealthServer', () => {
  it('answers /readyz with 503 and the reasons while the daemon is not ready, and 200 once it is', async () => {
    const { url } = await start();
    readiness = { ready: false, phase: 'starting', reasons: ['waiting for Redis at redis://cache:6379 (connect ECONNREFUSED; attempt 2)'], tables: { users: { loaded: false } } };
    const waiting = await fetch(`${url}/readyz`);
    expect(waiting.status).toBe(503);
    expect(waiting.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await waiting.json()).toEqual(readiness);
    readiness = { ready: true, phase: 'running', reasons: [], tables: { users: { loaded: true } } };
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('serves the metrics with their content type, and 500 when they cannot be collected', async () => {
    const { url } = await start();
    const ok = await fetch(`${url}/metrics`);
    expect(ok.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await ok.text()).toBe('tablecache_ready 1\n');
    metricsText = async () => {
      throw new Error('collect failed');
    };
    expect((await fetch(`${url}/metrics`)).status).toBe(500);
  });

  it('refuses a port that is taken with a ConfigError naming the address and the setting to change', async () => {
    const first = await start();
    const port = Number(new URL(first.url).port);
    const attempt = start(port);
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\).*daemon\\.http\\.port`));
  });

  it('answers HEAD like GET, and closes idle keep-alive connections on close', async () => {
    const server = await start();
    expect((await fetch(`${server.url}/healthz`, { method: 'HEAD' })).status).toBe(200);
    await server.close();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
