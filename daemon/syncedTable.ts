import type pg from 'pg';
import type { RefreshReadAhead } from './refreshReadAhead.ts';
import type { StepSnapshot } from './stepSnapshot.ts';
import type { TableChanges } from './changeBatch.ts';
import type { TableRefreshCounts } from './tableSync.ts';

/** What the pipeline needs of a cached table ({@link TableSync} in the daemon). */
export interface SyncedTable {
  readonly name: string;
  /** Whether a load succeeded and no reload failed since. */
  readonly isLoaded: boolean;
  /** Loads every record anew, reading `snapshot`; `reasons` are for its log line and events. */
  reload(reasons: readonly string[], snapshot: StepSnapshot): Promise<{ readonly records: number; readonly ms: number }>;
  /**
   * Refreshes the records `changes` names, reading them (and resolving keys)
   * in `snapshot`; records `readAhead` read in the same snapshot are used
   * instead of reading them again.
   */
  refresh(changes: TableChanges, snapshot: StepSnapshot, readAhead?: RefreshReadAhead | null): Promise<TableRefreshCounts>;
  /** Starts reading the records `changes` names in `session`, whose snapshot a step's cut will hold them in; `null`: nothing to read. */
  readAhead?(changes: TableChanges, session: pg.ClientBase): RefreshReadAhead | null;
  /** Whether Redis still holds what the table published. */
  storageIntact(): Promise<boolean>;
}
