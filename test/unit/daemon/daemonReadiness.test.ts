import { describe, expect, it } from 'vitest';
import { tableReadinessReasons } from '../../../daemon/daemonReadiness.ts';

describe('tableReadinessReasons', () => {
  it('names a loaded table behind until a catch-up reload, and each unloaded table by what it waits for', () => {
    const reasons = tableReadinessReasons(
      { users: { loaded: true }, cities: { loaded: true }, orders: { loaded: false }, items: { loaded: false }, tags: { loaded: false } },
      new Map([
        ['users', { reasons: ['LISTEN was down'], kinds: ['listen_lost' as const] }],
        ['cities', { reasons: ['a TRUNCATE'], kinds: ['truncate' as const] }],
      ]),
      new Map([['orders', { table: 'orders', rows: 1500, estimatedRows: 3000, elapsedMs: 2000 }]]),
      new Set(['items']),
    );
    expect(reasons).toEqual([
      'table users may be behind until its reload (LISTEN was down)',
      'table orders is loading: 1,500 of about 3,000 rows read in 2.0 s',
      'table items is not loaded: its last load failed (see the log); retrying',
      'table tags is not loaded yet',
    ]);
  });
});
