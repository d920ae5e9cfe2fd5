import type { RecordScorer } from '../../../../lib/core/storageTable.ts';

/** Rows with every value type `pg` returns, keyed by a string primary key. */
export type PgLikeRow = Record<string, unknown> & { key: string; rank: number };

export const pgLikeScorer: RecordScorer<PgLikeRow, string> = {
  indexNames: ['primary_key', 'rank'],
  score: (indexName, row) => (indexName === 'primary_key' ? row.rank : row.rank * -1),
  primaryKey: (row) => row.key,
};

export function pgLikeRows(): PgLikeRow[] {
  return Array.from({ length: 50 }, (_, i) => ({
    key: `user:${i}`,
    rank: i,
    name: i % 7 === 0 ? 'naïve 🚀 "quoted"\n' : `name ${i}`,
    nickname: i % 3 === 0 ? null : `n${i}`,
    active: i % 2 === 0,
    balance: '12345678901234567890.1234',
    ratio: i / 3,
    int8: BigInt(i) * 10_000_000_000n,
    huge: 2n ** 80n + BigInt(i),
    created: new Date(Date.UTC(2024, 1, 29, 12, 0, i)),
    avatar: Buffer.from([i, 0, 255, 1]),
    tags: ['a', `t${i}`],
    matrix: [[i, i + 1], []],
    settings: { theme: 'dark', sizes: [1, 2.5], nested: { on: true, off: null } },
  }));
}
