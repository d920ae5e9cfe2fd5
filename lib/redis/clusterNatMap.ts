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

/** `host:port` with a port from 1 to 65535 (no IPv6 literal: a node announces an IPv6 address in brackets, which the map cannot key). */
const HOST_PORT = /^([^\s:]+):(\d{1,5})$/;

function reachable(announced: string, address: ReachableAddress): { host: string; port: number } {
  const parsed = typeof address === 'string' ? HOST_PORT.exec(address) : null;
  const { host, port } = parsed !== null ? { host: parsed[1]!, port: Number(parsed[2]) } : typeof address === 'object' && address !== null ? address : { host: '', port: 0 };
  if (typeof host !== 'string' || host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) {
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
