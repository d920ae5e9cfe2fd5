import type pg from 'pg';
import type { PrimaryKey } from '../lib/core/storageTable.ts';
import type { Row } from './daemonStorage.ts';

/** One index's keys whose records a step read ahead, and those records. */
export interface IndexReadAhead {
  readonly keys: ReadonlySet<PrimaryKey>;
  readonly records: Promise<Row[]>;
}

/**
 * The records a step read in its snapshot S while its cut was still being
 * proven: those of the changes queued when S was fixed whose transaction is
 * visible in S, which the cut certainly holds. The refresh then reads only
 * the keys of changes that arrived later (in S too), so that its database
 * round trip overlaps the wait for the proof instead of following it.
 */
export class RefreshReadAhead {
  constructor(
    /** The session holding S: the records are valid for that snapshot only. */
    readonly session: pg.ClientBase,
    private readonly byIndex: ReadonlyMap<string, IndexReadAhead>,
  ) {
    // Awaited by the refresh that uses them; an abandoned step never asks.
    for (const { records } of byIndex.values()) records.catch(() => undefined);
  }

  /** What was read ahead for `indexName`, when every key of it is among `keys` (the cut's); else `undefined`. */
  covering(indexName: string, keys: ReadonlyMap<PrimaryKey, unknown>): IndexReadAhead | undefined {
    const ahead = this.byIndex.get(indexName);
    if (ahead === undefined) return undefined;
    for (const key of ahead.keys) if (!keys.has(key)) return undefined;
    return ahead;
  }

  /**
   * Resolves once every read is done; rejects with the first failure: a
   * failed read aborted S's transaction, so that error, not the "transaction
   * is aborted" of the next read, is what the step reports.
   */
  async settled(): Promise<void> {
    await Promise.all([...this.byIndex.values()].map(({ records }) => records));
  }
}
