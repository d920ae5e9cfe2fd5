import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The test files that take the longest (tens of seconds each: npm pack and
 * two tsc runs, CLI processes by the dozen, the chaos run, daemons started
 * again and again), longest first, as measured on 2026-12-03. A file that
 * starts last while the other worker has run out of files is the run's
 * tail; vitest orders by the durations of earlier runs, which a fresh CI
 * clone does not have (it then orders by file size, which puts some of these
 * near the end). A stale entry costs nothing but ordering.
 */
const SLOW_FILES = [
  'test/integration/package/packedPackage.test.ts',
  'test/integration/cli/triggersCli.test.ts',
  'test/chaos/chaos.test.ts',
  'test/integration/daemon/transferInvariant.test.ts',
  'test/integration/cli/exitCodes.test.ts',
  'test/integration/security/secretsInOutput.test.ts',
  'test/integration/daemon/redisEviction.test.ts',
  'test/integration/daemon/redisCluster.test.ts',
];

function slowRank(spec: TestSpecification): number {
  const rank = SLOW_FILES.findIndex((file) => spec.moduleId.endsWith(`/${file}`));
  return rank === -1 ? SLOW_FILES.length : rank;
}

/** Vitest's order (projects in name order, then by earlier durations or size), with the slowest files moved to the front. */
export default class SlowFilesFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    // Array.prototype.sort is stable: every other file keeps vitest's order.
    return sorted.sort((a, b) => slowRank(a) - slowRank(b));
  }
}
