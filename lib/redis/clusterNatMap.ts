import type { NatMap } from 'ioredis';
import { InvalidArgumentError } from '../core/errors.ts';

/** Where this process reaches a cluster node: `"host:port"`, or `{ host, port }` (ioredis' own form). */
export type ReachableAddress = string | { readonly host: string; readonly port: number };

/**
 * The addresses a Redis Cluster's nodes announce (`"host:port"`, as
 * `CLUSTER SHARDS` lists them), each mapped to the address this process
 * reaches that node at: for nodes behind NAT or in Docker, e.g.
 * `{ "10.0.0.5:6379": "127.0.0.1:7000" }`. The reader's `cluster.natMap` and
 * the daemon's `redis.cluster.natMap` take the same shape.
 */
export type ClusterNatMap = Readonly<Record<string, ReachableAddress>>;

/** `host:port`, as the daemon's config schema takes it (a host name or IPv4 address: no IPv6 literal). */
const HOST_PORT = /^([^\s:]+):(\d{1,5})$/;

function reachable(announced: string, address: ReachableAddress): { host: string; port: number } {
  let host: unknown;
  let port: unknown;
  if (typeof address === 'string') {
    const parsed = HOST_PORT.exec(address);
    [host, port] = parsed === null ? [] : [parsed[1], Number(parsed[2])];
  } else if (typeof address === 'object' && address !== null) {
    ({ host, port } = address);
  }
  if (typeof host !== 'string' || host === '' || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new InvalidArgumentError(`cluster.natMap maps "${announced}" to ${JSON.stringify(address)}; write the address this process reaches the node at as "host:port" or { host, port }.`);
  }
  return { host, port };
}

/**
 * `map` in ioredis' form (`{ host, port }` values), checked.
 *
 * @throws {@link InvalidArgumentError} naming an entry whose key is not `"host:port"` or whose value is neither `"host:port"` nor `{ host, port }`.
 */
export function ioredisNatMap(map: ClusterNatMap): NatMap {
  const entries = Object.entries(map).map(([announced, address]) => {
    if (!HOST_PORT.test(announced)) {
      throw new InvalidArgumentError(`cluster.natMap has the key "${announced}"; key each entry by the address the node announces, as "host:port".`);
    }
    return [announced, reachable(announced, address)] as const;
  });
  return Object.fromEntries(entries);
}
