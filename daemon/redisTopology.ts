import { ConfigError } from './config/configError.ts';
import type { RedisConfig } from './config/configSchema.ts';
import type { RedisConnection } from './redisConnection.ts';

/**
 * Redis errors that mean the servers behind the connection are changing
 * (a failover, a resharding, a node loading its data, a lost connection),
 * not that a command or the data is wrong: waiting and retrying heals them.
 * MOVED/ASK reach here only when the connection is not a cluster client.
 */
const TOPOLOGY_ERROR =
  /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|LOADING|READONLY|MASTERDOWN)\b|Connection is closed|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes|ECONNREFUSED|ECONNRESET|EPIPE/;

/** The message of the first error in `error`'s cause chain that is a topology event ({@link TOPOLOGY_ERROR}), else `undefined`. */
export function topologyErrorOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (TOPOLOGY_ERROR.test(current.message)) return current.message;
  }
  return undefined;
}

/**
 * Refuses `redis.url` naming a node of a Redis Cluster: every command on a
 * key of another node's slots would fail with MOVED. `INFO cluster` says it
 * (cluster_enabled:1); a server that does not allow INFO is let through.
 * `description` names the server for the message (describeRedis).
 *
 * @throws {@link ConfigError} (`TC_CONFIG_INVALID`) naming the setting to use instead.
 */
export async function refuseClusterNodeUrl(redis: RedisConnection, config: RedisConfig, description: string): Promise<void> {
  if (config.url === undefined) return;
  const info = await redis.info('cluster').catch(() => '');
  if (!/^cluster_enabled:1/m.test(info)) return;
  throw new ConfigError(
    `${description} is a node of a Redis Cluster, which redis.url cannot use (keys on other nodes answer MOVED). ` +
      'Replace redis.url with redis.cluster: { nodes: ["<that URL>", …] }: any node finds the others.',
  );
}
