import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';
import SlowFilesFirstSequencer from './test/support/slowFilesFirstSequencer.ts';

export default defineConfig({
  test: {
    // Integration files each own a database and a Redis key prefix, so they
    // run in parallel; the slowest (daemon restarts, large loads) need room.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default for `run` is one worker less than the CPUs: one on a
    // 2-core CI machine, where every file then ran after the other. Most of
    // an integration file's time is spent waiting on servers and daemons.
    maxWorkers: Math.max(2, availableParallelism()),
    sequence: { sequencer: SlowFilesFirstSequencer },
    projects: [
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**'],
          globalSetup: ['test/support/globalSetup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Unit files use no servers, mocks, fake timers or environment
          // changes: one worker runs many of them without a fresh module
          // graph each (a fresh fork and import per file cost more than the
          // tests themselves).
          isolate: false,
        },
      },
    ],
  },
});
