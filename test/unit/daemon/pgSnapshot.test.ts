import { describe, expect, it } from 'vitest';
import { parsePgSnapshot, visibleInSnapshot } from '../../../daemon/pgSnapshot.ts';

describe('parsePgSnapshot and visibleInSnapshot', () => {
  it('sees transactions below xmin, not at or above xmax, and none of those in progress', () => {
    const snapshot = parsePgSnapshot('100:105:101,103');
    expect([99n, 100n, 101n, 102n, 103n, 104n, 105n, 106n].map((xid) => visibleInSnapshot(snapshot, xid))).toEqual([
      true,
      true,
      false,
      true,
      false,
      true,
      false,
      false,
    ]);
  });

  it('reads full 64-bit ids and an empty in-progress list', () => {
    const snapshot = parsePgSnapshot('9007199254740993:9007199254740995:');
    expect(snapshot.xip.size).toBe(0);
    expect(visibleInSnapshot(snapshot, 9007199254740994n)).toBe(true);
    expect(visibleInSnapshot(snapshot, 9007199254740995n)).toBe(false);
  });

  it('names the text it cannot read and the form it expects', () => {
    expect(() => parsePgSnapshot('100:abc')).toThrow(/Expected a Postgres snapshot as "xmin:xmax:xip,…".*"100:abc"/);
  });
});
