import type { Cluster, Redis } from 'ioredis';
import type { Logger } from '../lib/core/logger.ts';

/** How often a cluster with an unreachable master is probed until every master answers again. */
const PROBE_INTERVAL_MS = 250;
/** How long one master may take to answer a probe's PING. */
const PROBE_TIMEOUT_MS = 1_000;

/** Options of {@link watchClusterMasters}. */
export interface ClusterMasterWatchOptions {
  /** The cluster, for messages: `Redis Cluster at redis://a:7000, …`. */
  readonly description: string;
  readonly logger: Logger;
  /** A master stopped answering: writes to its slots fail (or wait) until a replica takes over. */
  readonly onDown: (detail: string) => void;
  /** Every master the client knows answers again, and the cluster reports cluster_state:ok. */
  readonly onUp: () => void;
}

const addressOf = (node: Redis) => `${node.options.host}:${node.options.port}`;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Tells when a master of a Redis Cluster is lost and when the cluster serves
 * every slot again. ioredis follows a failover by itself (it retries MOVED,
 * CLUSTERDOWN, TRYAGAIN and closed connections after refreshing the slots),
 * so commands wait or fail without the client ever "reconnecting": this is
 * what makes `/readyz` honest meanwhile. A connection error of a node the
 * client holds as a master is the start; the end is every master in a fresh
 * slot map answering PING and one of them reporting cluster_state:ok.
 * Replicas do not count: losing one loses no write. Returns the function
 * that stops watching.
 */
export function watchClusterMasters(cluster: Cluster, options: ClusterMasterWatchOptions): () => void {
  let down = false;
  let probe: NodeJS.Timeout | undefined;
  let stopped = false;

  const healthy = async (): Promise<boolean> => {
    await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
    const masters = cluster.nodes('master');
    if (masters.length === 0) return false;
    const answers = await Promise.all(masters.map((node) => withTimeout(node.ping(), PROBE_TIMEOUT_MS).then(() => true, () => false)));
    if (answers.includes(false)) return false;
    const info = await withTimeout(masters[0]!.cluster('INFO'), PROBE_TIMEOUT_MS).catch(() => '');
    return /^cluster_state:ok\s*$/m.test(String(info));
  };

  const scheduleProbe = () => {
    if (stopped) return;
    probe = setTimeout(() => {
      void healthy().then(
        (ok) => {
          if (!ok) return scheduleProbe();
          down = false;
          options.logger.info({ redis: options.description }, 'every Redis Cluster master answers again');
          options.onUp();
        },
        () => scheduleProbe(),
      );
    }, PROBE_INTERVAL_MS);
  };

  const onNodeError = (error: Error, address: string) => {
    if (down || stopped) return;
    if (!cluster.nodes('master').some((node) => addressOf(node) === address)) return;
    down = true;
    const detail = `master ${address} of ${options.description} does not answer (${error.message}); waiting for a replica to take over its slots`;
    options.logger.warn({ redis: options.description, node: address, cause: error.message }, 'a Redis Cluster master does not answer; waiting for failover');
    options.onDown(detail);
    scheduleProbe();
  };

  cluster.on('node error', onNodeError);
  return () => {
    stopped = true;
    clearTimeout(probe);
    cluster.off('node error', onNodeError);
  };
}
