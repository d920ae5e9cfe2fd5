import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import { freePort } from './privateServers.ts';
import { waitFor } from './waitFor.ts';

/**
 * A Redis replica of a test's own whose replication can be held back: it
 * replicates from the primary through a TCP proxy, and `hold()` stops the
 * proxy from passing the primary's stream on, so the replica keeps serving
 * reads of an older state, a lag as long as the test wants and no timing.
 * Connections opened through the proxy after `hold()` (a client asking the
 * primary at the replica's master address) pass normally.
 */
/** One connection through the proxy. */
interface ProxyLink {
  held: boolean;
  readonly queued: Buffer[];
  release(): void;
  close(): void;
}

export class LaggingReplica {
  private constructor(
    readonly port: number,
    private readonly proxy: net.Server,
    private readonly links: Set<ProxyLink>,
    private readonly server: ChildProcess,
    private readonly directory: string,
  ) {}

  /** Starts the proxy to the primary on `primaryPort` and a replica of it (no persistence); resolves once the replica's link is up. */
  static async start(primaryPort: number): Promise<LaggingReplica> {
    const links = new Set<ProxyLink>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(primaryPort, '127.0.0.1');
      const link: ProxyLink = {
        held: false,
        queued: [],
        release() {
          this.held = false;
          for (const chunk of this.queued.splice(0)) client.write(chunk);
        },
        close() {
          links.delete(link);
          client.destroy();
          upstream.destroy();
        },
      };
      links.add(link);
      upstream.on('data', (chunk: Buffer) => (link.held ? link.queued.push(chunk) : client.write(chunk)));
      client.pipe(upstream);
      const close = () => link.close();
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    const port = await freePort();
    // The replica writes the primary's snapshot to its directory while it syncs.
    const directory = mkdtempSync(path.join(tmpdir(), 'tc-lagging-replica-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory, '--replicaof', '127.0.0.1', String(proxyPort)];
    const server = spawn('redis-server', args, { stdio: 'ignore' });
    const replica = new LaggingReplica(port, proxy, links, server, directory);
    try {
      await waitFor(`replica on port ${port} to link to its primary`, async () => {
        const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        probe.on('error', () => {});
        try {
          await probe.connect();
          return /master_link_status:up/.test(await probe.info('replication'));
        } finally {
          probe.disconnect();
        }
      }, { timeoutMs: 30_000 });
    } catch (error) {
      await replica.stop();
      throw error;
    }
    return replica;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** From now on, what the primary sends over the connections open now (the replication link) is held back. */
  hold(): void {
    for (const link of this.links) link.held = true;
  }

  /** Passes on everything held back, and what follows. */
  release(): void {
    for (const link of this.links) link.release();
  }

  /** Stops the replica and the proxy. */
  async stop(): Promise<void> {
    if (this.server.exitCode === null && this.server.signalCode === null) {
      const exited = new Promise((resolve) => this.server.once('exit', resolve));
      this.server.kill('SIGKILL');
      await exited;
    }
    for (const link of [...this.links]) link.close();
    await new Promise((resolve) => this.proxy.close(resolve));
    rmSync(this.directory, { recursive: true, force: true });
  }
}
