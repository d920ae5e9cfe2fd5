import { Cluster, type Redis } from 'ioredis';
import type { Logger } from '../core/logger.ts';
import { readerFunctionLibrary } from './scripts/readerScripts.ts';
import { loadReaderFunctionLibrary } from './writerProtocol.ts';

/**
 * Keeps the readers' function library (FCALL_RO is cheaper per read than
 * EVALSHA_RO) loaded on every primary the writer's connection reaches: the
 * one Redis, or every master of a Cluster. FUNCTION LOAD replicates, but a
 * FUNCTION FLUSH, a restart without persistence, or a failover to a node
 * that never had it leaves readers without it; readers then fall back to
 * scripts, and this puts the library back at its next check (every
 * `checkEveryMs`), after which readers return to it (they retry FCALL_RO
 * every 30 s). A Redis that refuses FUNCTION (an ACL without it) costs only
 * speed: it is logged once and not asked again.
 */
export class ReaderFunctionKeeper {
  private readonly timer: NodeJS.Timeout;
  private checking = false;
  private refused = false;

  private constructor(
    private readonly redis: Redis | Cluster,
    private readonly table: string,
    private readonly logger: Logger,
    checkEveryMs: number,
  ) {
    this.timer = setInterval(() => void this.check(), checkEveryMs);
    // A writer's process ends when its work does, not when this stops.
    this.timer.unref();
  }

  /** Loads the library on every primary now (FUNCTION LOAD REPLACE), then checks it every `checkEveryMs`. */
  static async start(redis: Redis | Cluster, table: string, logger: Logger, checkEveryMs: number): Promise<ReaderFunctionKeeper> {
    const keeper = new ReaderFunctionKeeper(redis, table, logger, checkEveryMs);
    await keeper.forEachPrimary(async (node) => {
      await loadReaderFunctionLibrary(node, true);
    });
    return keeper;
  }

  /** Stops checking. */
  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Loads the library on each primary that lacks it: FUNCTION LOAD without
   * REPLACE, which Redis refuses where the library exists. The same
   * permission as at open (`+function|load`), where FUNCTION LIST would need
   * another one.
   */
  private async check(): Promise<void> {
    if (this.checking || this.refused) return;
    this.checking = true;
    try {
      await this.forEachPrimary(async (node) => {
        if (!(await loadReaderFunctionLibrary(node, false))) return;
        this.logger.info(
          { table: this.table, library: readerFunctionLibrary.name, node: `${node.options.host}:${node.options.port}` },
          'loaded the reader function library again (it was missing: FUNCTION FLUSH, a restart without persistence, or a failover)',
        );
      });
    } finally {
      this.checking = false;
    }
  }

  private async forEachPrimary(load: (node: Redis) => Promise<void>): Promise<void> {
    const nodes = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    await Promise.all(
      nodes.map(async (node) => {
        try {
          await load(node);
        } catch (error) {
          if (error instanceof Error && /NOPERM|unknown command/i.test(error.message)) this.refused = true;
          this.logger.warn(
            { table: this.table, library: readerFunctionLibrary.name, node: `${node.options.host}:${node.options.port}`, err: error },
            'could not load the reader function library; readers will use scripts',
          );
        }
      }),
    );
  }
}
