import { describe, expect, it } from 'vitest';
import { chaosPassed, formatChaosReport, runChaos } from './chaosRun.ts';
import { SCHEMA } from '../integration/daemon/daemonHarness.ts';
import { faultKindsFor } from './faultInjectors.ts';

/**
 * The short version of `npm run chaos`: the same workload, faults and
 * measurements on a private Postgres and Redis, one round of every fault
 * kind (in seeded order, with shorter pauses between faults).
 */
describe('the chaos suite, short', () => {
  it('after every kind of fault under load, nothing diverges, no read is stale, and every fault is recovered from', { timeout: 300_000 }, async ({ signal }) => {
    // The signal aborts on a test timeout: the run then still stops its servers and processes.
    const logDir = process.env['TABLECACHE_CHAOS_LOGS'];
    const report = await runChaos({
      seed: 7,
      durationMs: 10_000,
      faultGapMs: [300, 1_000],
      users: 500,
      cities: 20,
      writers: 2,
      readers: 2,
      signal,
      ...(logDir === undefined ? {} : { daemonLogDir: logDir, log: (line: string) => console.info(line) }),
    });
    console.info(`chaos (short):\n${formatChaosReport(report)}`);

    expect(report.verification.differences).toEqual([]);
    expect(report.divergent).toBe(0);
    expect(report.probe).toMatchObject({ stale: 0, firstStale: null });
    expect(report.probe.checked).toBeGreaterThan(0);
    for (const kind of faultKindsFor('single')) {
      const outcome = report.faults[kind];
      expect(outcome.injected, kind).toBeGreaterThanOrEqual(1);
      expect(outcome.recovered, `${kind} recovered every time`).toBe(outcome.injected);
    }
    expect(report.daemonCrashes).toEqual([]);
    expect(report.reads.served).toBeGreaterThan(0);
    expect(report.reads).toMatchObject({ transferTorn: 0, firstTorn: null });
    expect(report.reads.transferChecked).toBeGreaterThan(0);
    expect(Object.values(report.writes.committed).reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);
  });

  it('on the logical change source, after a walsender kill, a Postgres restart and killed daemons, nothing diverges, no read is stale, and the killed daemons\' successors resume from the slot without a reload', { timeout: 120_000 }, async ({ signal }) => {
    // The faults that matter for the stream, with a small workload: the full suite runs them all (npm run chaos -- --capture logical).
    const faults = ['listenerTerminated', 'postgresRestart', 'daemonKilled'] as const;
    const report = await runChaos({ seed: 7, capture: 'logical', faults, durationMs: 1, faultGapMs: [300, 600], leaseTtlMs: 2_000, users: 200, cities: 10, writers: 2, readers: 1, signal });
    console.info(`chaos (short, logical):\n${formatChaosReport(report)}`);

    expect(report.verification.differences).toEqual([]);
    expect(report.divergent).toBe(0);
    expect(report.probe).toMatchObject({ stale: 0, firstStale: null });
    expect(report.probe.checked).toBeGreaterThan(0);
    for (const kind of faults) expect(report.faults[kind], kind).toMatchObject({ injected: 1, recovered: 1 });
    expect(report.faults.daemonKilled.reloadedAcross).toBe(0);
    expect(report.daemonCrashes).toEqual([]);
    expect(report.reads).toMatchObject({ transferTorn: 0, firstTorn: null });
    expect(report.reads.transferChecked).toBeGreaterThan(0);
  });

  it('fails when the cache misses changes: with the trigger on users disabled, reads after a barrier are stale and records diverge', { timeout: 120_000 }, async ({ signal }) => {
    const report = await runChaos({
      seed: 7,
      durationMs: 3_000,
      // No fault: every fault may cause a reload (even a Redis pause, when it lets a lease lapse on a loaded machine),
      // and a reload would repair what the missing trigger broke.
      faults: [],
      users: 100,
      cities: 5,
      writers: 1,
      readers: 1,
      signal,
      afterSetup: (pool) => pool.query(`ALTER TABLE ${SCHEMA}.users DISABLE TRIGGER USER`).then(() => {}),
    });

    // Deterministic: the probe users live in a city no writer renames, so nothing but their own (now missed) writes
    // refreshes them; every probe round that reaches its barrier reads a stale stamp, and the last stamp diverges.

    expect(report.probe.stale).toBeGreaterThan(0);
    expect(report.probe.stale).toBe(report.probe.checked);
    expect(report.divergent).toBeGreaterThan(0);
    expect(chaosPassed(report)).toBe(false);
  });
});
