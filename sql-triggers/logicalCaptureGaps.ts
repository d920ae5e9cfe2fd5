import type pg from 'pg';
import { formatQualifiedName } from './identifiers.ts';
import { replicaIdentityChecks } from './logicalCaptureChecks.ts';
import type { LogicalCaptureSpec } from './logicalCaptureSpec.ts';
import { readCaptureIdentities, unpublishedSources } from './logicalCaptureState.ts';
import { readPartitionTruncateTriggers } from './partitionTruncateTriggers.ts';

/** A source table whose changes do not reach the logical capture's stream now. */
export interface LogicalCaptureGap {
  /** Canonical source table name. */
  readonly source: string;
  /** Why, for people: the publication is gone or leaves it out, or its replica identity cannot give old keys. */
  readonly detail: string;
}

/**
 * What would keep changes of a running logical capture from the daemon, per
 * source table: the publication dropped, a source table removed from it
 * (Postgres then sends its changes to nobody), or a replica identity that no
 * longer gives the old values of the key columns (UPDATE and DELETE on the
 * table then fail, or carry no old key), or a partition without the
 * truncate trigger (attached since the install). The daemon's periodic capture check
 * reports these as it reports missing triggers. Read-only.
 */
export async function readLogicalCaptureGaps(client: Pick<pg.ClientBase, 'query'>, spec: LogicalCaptureSpec): Promise<LogicalCaptureGap[]> {
  const unpublished = await unpublishedSources(client, spec.publication, spec.sources);
  if (unpublished === null) return spec.sources.map((source) => ({ source: formatQualifiedName(source), detail: `the publication ${spec.publication} does not exist` }));
  const gaps = unpublished.map((source) => ({ source, detail: `the publication ${spec.publication} does not publish it` }));
  for (const check of replicaIdentityChecks(await readCaptureIdentities(client, spec), spec)) {
    if (check.level === 'problem' && check.source !== undefined) gaps.push({ source: check.source, detail: check.message });
  }
  if (spec.partitionTruncate !== undefined) {
    for (const partition of await readPartitionTruncateTriggers(client, spec.publication, spec.sources)) {
      if (partition.installed) continue;
      gaps.push({ source: partition.source, detail: `partition ${formatQualifiedName(partition.partition)} has no truncate trigger, so a TRUNCATE of it alone would not reach the daemon` });
    }
  }
  return gaps;
}
