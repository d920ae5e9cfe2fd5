/**
 * What each Redis server of a benchmark did: its process's CPU time, read
 * from /proc/<pid>/stat (what the kernel charged the process, user and
 * system, whatever Redis itself reports), and the reader calls it served
 * (FCALL_RO / EVALSHA_RO in INFO commandstats). Linux only.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** One server's counters at one moment. */
export interface NodeSample {
  readonly port: number;
  /** CPU seconds (user + system) the server process has used since it started. */
  readonly cpuSeconds: number;
  /** Reader calls (scripts and functions run read-only) it has served since it started. */
  readonly readCalls: number;
}

/** What a reader call is in INFO commandstats: the reader sends FCALL_RO, or EVALSHA_RO / EVAL_RO where functions are missing. */
const READ_COMMANDS = ['fcall_ro', 'evalsha_ro', 'eval_ro'];

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** utime + stime of `pid` in seconds (fields 14 and 15 of /proc/<pid>/stat, counted after the command name, which may hold spaces). */
function processCpuSeconds(pid: number, ticksPerSecond: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Samples the servers on `ports` of 127.0.0.1; `close()` ends its connections. */
export class RedisNodeUsage {
  private constructor(
    private readonly nodes: readonly { port: number; pid: number; admin: Redis }[],
    private readonly ticksPerSecond: number,
  ) {}

  static async open(ports: readonly number[]): Promise<RedisNodeUsage> {
    const nodes = await Promise.all(
      ports.map(async (port) => {
        const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 });
        const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))?.[1]);
        if (!Number.isInteger(pid) || pid <= 0) throw new Error(`Redis on port ${port} did not report its process_id.`);
        return { port, pid, admin };
      }),
    );
    return new RedisNodeUsage(nodes, clockTicksPerSecond());
  }

  /** The servers' process ids, in the order of the ports. */
  get processIds(): number[] {
    return this.nodes.map((node) => node.pid);
  }

  async sample(): Promise<NodeSample[]> {
    return Promise.all(
      this.nodes.map(async ({ port, pid, admin }) => {
        const stats = await admin.info('commandstats');
        const readCalls = READ_COMMANDS.reduce((sum, command) => sum + Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0);
        return { port, cpuSeconds: processCpuSeconds(pid, this.ticksPerSecond), readCalls };
      }),
    );
  }

  close(): void {
    for (const { admin } of this.nodes) admin.disconnect();
  }
}
