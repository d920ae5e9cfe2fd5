import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../lib/core/logger.ts';
import { ConfigError } from '../config/configError.ts';
import type { DaemonReadiness } from '../daemonReadiness.ts';

/** Options of {@link HealthServer.start}. */
export interface HealthServerOptions {
  /** Address to listen on (`daemon.http.host`): `127.0.0.1` for this host only, `0.0.0.0` in a container. */
  readonly host: string;
  /** Port (`daemon.http.port`); 0 picks a free one (see {@link HealthServer.url}). */
  readonly port: number;
  /** What `/readyz` reports. */
  readonly daemon: { readiness(): DaemonReadiness };
  /** What `/metrics` serves. */
  readonly metrics: { metrics(): Promise<string>; readonly contentType: string };
  readonly logger: Logger;
}

const ENDPOINTS = {
  '/healthz': 'the process is alive (200)',
  '/readyz': 'every table is loaded and LISTEN is connected (200), else 503 with the reasons',
  '/metrics': 'Prometheus metrics',
};

/**
 * The daemon's HTTP endpoint for orchestrators and Prometheus, on Node's own
 * http module:
 *
 * - `GET /healthz`: 200 `{"status":"alive"}` while the process answers (a
 *   liveness probe: a daemon waiting for Redis is alive, and restarting it
 *   would not help);
 * - `GET /readyz`: 200 when every table is loaded and LISTEN is connected,
 *   else 503; the JSON body says why (`{"ready":false,"reasons":["waiting
 *   for Redis at redis://cache:6379 (connect ECONNREFUSED …)"],…}`);
 * - `GET /metrics`: Prometheus text format.
 *
 * It is started before the daemon, so it answers while the daemon waits for
 * its servers.
 */
export class HealthServer implements AsyncDisposable {
  private constructor(
    private readonly server: http.Server,
    /** Where it listens, e.g. `http://127.0.0.1:9464`. */
    readonly url: string,
  ) {}

  /**
   * Listens on `host:port`.
   *
   * @throws {@link ConfigError} when it cannot listen there (the port is taken, the address is not this host's).
   */
  static async start(options: HealthServerOptions): Promise<HealthServer> {
    const server = http.createServer((request, response) => void respond(request, response, options));
    // A probe that hangs must not hold a shutdown open.
    server.keepAliveTimeout = 5_000;
    server.requestTimeout = 10_000;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      const cause = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new ConfigError(
        `Cannot serve health and metrics on ${options.host}:${options.port} (${cause}): set daemon.http.port to a free port ` +
          '(0 picks one) or daemon.http.host to an address of this host.',
        { cause: error },
      );
    }
    server.on('error', (error) => options.logger.error({ err: error }, 'the health and metrics server failed'));
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    const url = `http://${host}:${port}`;
    options.logger.info({ url, endpoints: Object.keys(ENDPOINTS) }, 'serving health and metrics');
    return new HealthServer(server, url);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function respond(request: http.IncomingMessage, response: http.ServerResponse, options: HealthServerOptions): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    sendJson(response, 405, { error: `${request.method} is not allowed; use GET` });
    return;
  }
  switch (path) {
    case '/healthz':
      sendJson(response, 200, { status: 'alive' });
      return;
    case '/readyz': {
      const readiness = options.daemon.readiness();
      sendJson(response, readiness.ready ? 200 : 503, readiness);
      return;
    }
    case '/metrics':
      try {
        const text = await options.metrics.metrics();
        response.writeHead(200, { 'Content-Type': options.metrics.contentType });
        response.end(text);
      } catch (error) {
        options.logger.error({ err: error }, 'could not collect the metrics');
        sendJson(response, 500, { error: 'could not collect the metrics; see the daemon log' });
      }
      return;
    default:
      sendJson(response, 404, { error: `no endpoint ${path}`, endpoints: ENDPOINTS });
  }
}

function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  response.end(`${JSON.stringify(body)}\n`);
}
