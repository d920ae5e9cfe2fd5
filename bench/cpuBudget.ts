/**
 * A fixed CPU budget per process for a benchmark, the way a managed Redis
 * node or a node on a host of its own has one: each process gets a cgroup of
 * its own with a CFS quota of `cores` × the period, so it can use at most
 * that much CPU however many cores the machine has free, and a weight ten
 * times the default, so that other work on a busy machine does not take
 * that much from it. On a machine of few shared cores this makes the
 * budgeted servers, not the machine, the limit of what they serve. Linux
 * only, and needs write access to a cgroup `cpu`
 * controller (root): cgroup v1 (`/sys/fs/cgroup/cpu`, `cpu.cfs_quota_us`) or
 * cgroup v2 (`cpu` in `cgroup.controllers`, `cpu.max`).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The CFS period: the quota is spent within each 100 ms. */
const PERIOD_MICROS = 100_000;
/**
 * How much a budgeted process weighs against others when the machine is
 * busy, times the default: enough that it gets its whole budget while other
 * work competes for the cores, as a node with cores of its own would (the
 * quota still caps it).
 */
const WEIGHT_FACTOR = 10;
/** The kernel's smallest quota. */
const MIN_QUOTA_MICROS = 1_000;
/** Group names: the benchmark's pid lets a later run remove the groups of one that was killed before it could. */
const GROUP_PREFIX = 'tablecache-bench-';

/** What a budget needs and this machine lacks; the benchmark then runs without one, and says so. */
export class CpuBudgetUnavailableError extends Error {
  /** A stable code to branch on. */
  readonly code = 'BENCH_CPU_BUDGET_UNAVAILABLE';

  constructor(
    /** What is missing, in a few words (the message adds what a budget needs). */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `No CPU budget per process: ${reason}. It needs Linux with a writable cgroup cpu controller: a cgroup v1 "cpu" hierarchy ` +
        '(e.g. /sys/fs/cgroup/cpu) or cgroup v2 with "cpu" in cgroup.controllers, and root (or write access to that hierarchy).',
      options,
    );
    this.name = 'CpuBudgetUnavailableError';
  }
}

/** Where groups are made and how a quota is written there. */
interface Hierarchy {
  readonly version: 'cgroup v1' | 'cgroup v2';
  /** The directory the groups are made in. */
  readonly root: string;
  /** Writes the quota and the weight of a fresh group. */
  setBudget(group: string, quotaMicros: number): void;
}

function cgroupMounts(): { mountPoint: string; type: string; options: string[] }[] {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/mounts', 'utf8');
  } catch (error) {
    throw new CpuBudgetUnavailableError('/proc/mounts is not readable (not Linux?)', { cause: error });
  }
  return mounts.split('\n').flatMap((line) => {
    const [, mountPoint, type, options] = line.split(' ');
    return (type === 'cgroup' || type === 'cgroup2') && mountPoint !== undefined ? [{ mountPoint, type, options: (options ?? '').split(',') }] : [];
  });
}

/** The v1 hierarchy carrying the cpu controller, else a v2 one offering it; v1 first, since a controller bound to v1 is missing from v2. */
function findHierarchy(): Hierarchy {
  const mounts = cgroupMounts();
  const v1 = mounts.find((mount) => mount.type === 'cgroup' && mount.options.includes('cpu'));
  if (v1 !== undefined) {
    return {
      version: 'cgroup v1',
      root: v1.mountPoint,
      setBudget(group, quotaMicros) {
        writeFileSync(path.join(group, 'cpu.cfs_period_us'), String(PERIOD_MICROS));
        writeFileSync(path.join(group, 'cpu.cfs_quota_us'), String(quotaMicros));
        writeFileSync(path.join(group, 'cpu.shares'), String(1024 * WEIGHT_FACTOR));
      },
    };
  }
  const v2 = mounts.find((mount) => mount.type === 'cgroup2' && readText(path.join(mount.mountPoint, 'cgroup.controllers')).split(/\s+/).includes('cpu'));
  if (v2 === undefined) throw new CpuBudgetUnavailableError('no cgroup v1 hierarchy has the cpu controller and no cgroup v2 mount offers it');
  const enabled = readText(path.join(v2.mountPoint, 'cgroup.subtree_control')).split(/\s+/);
  if (!enabled.includes('cpu')) {
    try {
      writeFileSync(path.join(v2.mountPoint, 'cgroup.subtree_control'), '+cpu');
    } catch (error) {
      throw new CpuBudgetUnavailableError(`cannot enable the cpu controller for the children of ${v2.mountPoint} (${String(error)})`, { cause: error });
    }
  }
  return {
    version: 'cgroup v2',
    root: v2.mountPoint,
    setBudget(group, quotaMicros) {
      writeFileSync(path.join(group, 'cpu.max'), `${quotaMicros} ${PERIOD_MICROS}`);
      writeFileSync(path.join(group, 'cpu.weight'), String(100 * WEIGHT_FACTOR));
    },
  };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes groups left by benchmarks that are gone; a group still holding a process stays. */
function removeAbandonedGroups(root: string): void {
  for (const name of readdirSync(root)) {
    const owner = /^tablecache-bench-(\d+)-/.exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    try {
      rmdirSync(path.join(root, name));
    } catch {
      // Its process still runs: the group stays until it ends.
    }
  }
}

/**
 * One cgroup per process, each with the same quota. {@link remove} (call it
 * in a `finally`, after the processes ended or not) moves any process still
 * inside back to the parent group and deletes the groups.
 *
 * @example
 * ```ts
 * const budgets = CpuBudgetGroups.apply([serverPid], 0.2);
 * try { … } finally { budgets.remove(); }
 * ```
 */
export class CpuBudgetGroups {
  private constructor(
    private readonly hierarchy: Hierarchy,
    private readonly groups: string[],
    /** The budget of each process, in cores. */
    readonly cores: number,
  ) {}

  /** Which cgroup version enforces the budget. */
  get version(): Hierarchy['version'] {
    return this.hierarchy.version;
  }

  /**
   * Gives each of `pids` (with all its threads and future children) a group
   * of its own limited to `cores` of CPU. Throws {@link CpuBudgetUnavailableError}
   * when the machine cannot, having removed what it made.
   */
  static apply(pids: readonly number[], cores: number): CpuBudgetGroups {
    const quotaMicros = Math.round(cores * PERIOD_MICROS);
    if (!Number.isFinite(cores) || quotaMicros < MIN_QUOTA_MICROS) {
      throw new RangeError(`A CPU budget must be at least ${MIN_QUOTA_MICROS / PERIOD_MICROS} of a core, got ${cores}.`);
    }
    const hierarchy = findHierarchy();
    removeAbandonedGroups(hierarchy.root);
    const budgets = new CpuBudgetGroups(hierarchy, [], cores);
    try {
      for (const pid of pids) {
        const group = path.join(hierarchy.root, `${GROUP_PREFIX}${process.pid}-${pid}`);
        mkdirSync(group);
        budgets.groups.push(group);
        hierarchy.setBudget(group, quotaMicros);
        writeFileSync(path.join(group, 'cgroup.procs'), String(pid));
      }
      return budgets;
    } catch (error) {
      budgets.remove();
      if (error instanceof CpuBudgetUnavailableError) throw error;
      throw new CpuBudgetUnavailableError(`making a group in ${hierarchy.root} (${hierarchy.version}) failed: ${String(error)}`, { cause: error });
    }
  }

  /** Deletes the groups, moving processes still inside to the parent first; returns the groups it could not delete (best effort: it runs in `finally` blocks). */
  remove(): string[] {
    const left: string[] = [];
    for (const group of this.groups.splice(0)) {
      try {
        if (!existsSync(group)) continue;
        for (const pid of readText(path.join(group, 'cgroup.procs')).split('\n').filter(Boolean)) {
          writeFileSync(path.join(this.hierarchy.root, 'cgroup.procs'), pid);
        }
        rmdirSync(group);
      } catch {
        left.push(group);
      }
    }
    return left;
  }
}
