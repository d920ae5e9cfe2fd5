import { describe, expect, it } from 'vitest';
import { chaosPassed, formatChaosReport, type ChaosReport } from './chaosRun.ts';
import { FAULT_KINDS, foreignPayloads } from './faultInjectors.ts';
import { SeededRandom } from './seededRandom.ts';

function cleanReport(): ChaosReport {
  return {
    seed: 1,
    elapsedMs: 30_000,
    workload: { writers: 2, transactionsPerSecond: 100, readers: 2, users: 10 },
    writes: { committed: { renameUser: 1, renameCity: 1, moveUser: 1, insertUser: 1, deleteUser: 1, updateMany: 1, rollback: 1 }, failed: 0 },
    probe: { checked: 5, stale: 0, firstStale: null, barrierTimeouts: 1, errors: 0 },
    reads: { served: 100, transferChecked: 20, transferTorn: 0, firstTorn: null, errors: { TC_TIMEOUT: 2 } },
    transfers: { transfers: 30, replacements: 5, abandoned: 1 },
    faults: Object.fromEntries(FAULT_KINDS.map((kind) => [kind, { injected: 2, recovered: 2, recoveryMs: [100, 300], reloadedAcross: 0 }])) as ChaosReport['faults'],
    verification: { table: 'users', loaded: true, postgresRecords: 10, redisRecords: 10, missing: 0, extra: 0, changed: 0, differences: [], equal: true },
    divergent: 0,
    daemonCrashes: [],
  };
}

describe('a chaos report', () => {
  it('passes only with no divergent record, no stale read, no torn transfer read, every fault recovered from and no daemon crash', () => {
    expect(chaosPassed(cleanReport())).toBe(true);
    expect(chaosPassed({ ...cleanReport(), divergent: 1 })).toBe(false);
    expect(chaosPassed({ ...cleanReport(), probe: { ...cleanReport().probe, stale: 1 } })).toBe(false);
    expect(chaosPassed({ ...cleanReport(), reads: { ...cleanReport().reads, transferTorn: 1, firstTorn: '200 accounts holding 199988' } })).toBe(false);
    expect(chaosPassed({ ...cleanReport(), daemonCrashes: ['daemon 12 exited with 1'] })).toBe(false);
    const unrecovered = cleanReport();
    unrecovered.faults.redisRestart.recovered = 1;
    expect(chaosPassed(unrecovered)).toBe(false);
  });

  it('prints the measures and, per injected fault kind, recovery p50 and max and the reloads across it', () => {
    const text = formatChaosReport(cleanReport());
    expect(text).toContain('| **divergent records at the end** | **0** (of 10) |');
    expect(text).toContain('| changes committed | 6 (');
    expect(text).toContain('| redisRestart | 2 | 2 | 300 | 300 | 0 |');
    expect(text).toContain('| **torn transfer reads** (wrong account count or total) | **0** |');
  });
});

describe('the seeded choices', () => {
  it('repeat for the same seed and label, and differ for another label', () => {
    const draw = (random: SeededRandom) => Array.from({ length: 5 }, () => random.int(0, 1_000_000));
    expect(draw(new SeededRandom(7).derive('writer 0'))).toEqual(draw(new SeededRandom(7).derive('writer 0')));
    expect(draw(new SeededRandom(7).derive('writer 0'))).not.toEqual(draw(new SeededRandom(7).derive('writer 1')));
  });
});

describe('the foreign NOTIFY payloads', () => {
  it('stay under the 8000 bytes Postgres accepts, the large ones within 20 bytes of it', () => {
    const sizes = foreignPayloads(new SeededRandom(1)).map((payload) => Buffer.byteLength(payload));
    expect(Math.max(...sizes)).toBeLessThan(8000);
    expect(sizes.filter((size) => size > 7_980)).toHaveLength(3);
  });
});
