import net from 'node:net';
import { SCHEMA, writeSeedConfig, type DaemonProcess, type SeedConfigOptions } from './daemonHarness.ts';

/**
 * The seed join plus a column that makes the refresh of a user named
 * `Slow…` take `SLOW_SECONDS`: a batch that is reliably in flight when a
 * test needs one (pg_sleep(0) for every other row costs nothing).
 */
export const SLOW_USERS_QUERY = `SELECT uc.*, u.name AS user_name, u.nickname AS user_nickname, c.name AS city_name,
    (SELECT true FROM pg_sleep(CASE WHEN u.name LIKE 'Slow%' THEN 2 ELSE 0 END)) AS checked
  FROM ${SCHEMA}.users u JOIN ${SCHEMA}.users_cities uc USING (user_id) JOIN ${SCHEMA}.cities c USING (city_id)`;

/** A configuration file for the seed schema whose refresh of a user named `Slow…` is slow (see {@link SLOW_USERS_QUERY}). */
export function writeOperationsConfig(options: Omit<SeedConfigOptions, 'query'>): ReturnType<typeof writeSeedConfig> {
  return writeSeedConfig({ ...options, query: SLOW_USERS_QUERY });
}

/** The daemon's health and metrics URL, from its `serving health and metrics` log line. */
export async function healthUrl(daemon: DaemonProcess): Promise<string> {
  await daemon.waitForLog('serving health and metrics');
  return String(daemon.logged('serving health and metrics')[0]!['url']);
}

/** The JSON bodies of the health endpoints, every field optional since each endpoint sends some. */
export interface EndpointBody {
  readonly status?: string;
  readonly ready?: boolean;
  readonly phase?: string;
  readonly reasons?: string[];
  readonly tables?: Record<string, { readonly loaded: boolean }>;
  readonly endpoints?: Record<string, string>;
}

/** GET `url`; the status and the body (parsed when JSON, else empty). */
export async function get(url: string): Promise<{ status: number; body: EndpointBody; text: string }> {
  const response = await fetch(url);
  const text = await response.text();
  const json = (response.headers.get('content-type') ?? '').startsWith('application/json');
  return { status: response.status, body: json ? (JSON.parse(text) as EndpointBody) : {}, text };
}

/**
 * Prometheus text format as a map from series (`name{label="value",…}`,
 * labels as written) to value.
 */
export function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

/**
 * Forwards connections on 127.0.0.1:`port` to `target`: a server that
 * "comes up" at a moment the test chooses (the real one behind it never
 * goes away). Closing it cuts every forwarded connection.
 */
export async function startTcpForwarder(port: number, target: { host: string; port: number }): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
