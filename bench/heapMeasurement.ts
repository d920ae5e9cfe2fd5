/**
 * Full garbage collections on demand, for benchmarks that report what stays
 * reachable (heap after a load) or that must start a phase from a settled
 * heap (peak RSS of one phase).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Runs a full, synchronous garbage collection. Needs no `--expose-gc` on the
 * command line: the flag is set at runtime and `gc` taken from a fresh context.
 */
export const collectGarbage: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

/** `heapUsed` after two full collections (the second frees what finalizers of the first released). */
export function settledHeapBytes(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}
