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
  /** Refreshes the records `changes` names, reading them (and resolving keys) in `snapshot`. */
  refresh(changes: TableChanges, snapshot: StepSnapshot): Promise<TableRefreshCounts>;
  /** Whether Redis still holds what the table published. */
  storageIntact(): Promise<boolean>;
}
