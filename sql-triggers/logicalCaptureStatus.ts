import type pg from 'pg';
import { formatQualifiedName } from './identifiers.ts';
import { logicalCaptureChecks, type CaptureCheck } from './logicalCaptureChecks.ts';
import { checkLogicalCaptureSpec, type LogicalCaptureSpec } from './logicalCaptureSpec.ts';
import { readLogicalCaptureState, type CaptureRelationIdentity, type CaptureServerState, type CaptureSlotState } from './logicalCaptureState.ts';

/** The slot's part of {@link LogicalCaptureStatus} (what `tablecache capture status` shows of it). */
export interface LogicalCaptureSlotStatus extends CaptureSlotState {
  /**
   * How far behind the consumer's confirmed position is, in seconds: the
   * walsender's `flush_lag` (`pg_stat_replication`) while one streams; 0
   * when no WAL was written since that position; otherwise `null` (unknown:
   * nothing streams, or it has not replied since the last write).
   */
  readonly lagSeconds: number | null;
}

/** The publication's part of {@link LogicalCaptureStatus}. */
export interface CapturePublicationStatus {
  readonly exists: boolean;
  readonly createdByInstall: boolean;
  /** Every table in it (canonical names). */
  readonly tables: readonly string[];
  /** Configured source tables it does not hold: their changes are not captured. */
  readonly missing: readonly string[];
  /** Tables it holds that the configuration does not name: decoded for nothing. */
  readonly extra: readonly string[];
  /** Publishes INSERT, UPDATE, DELETE and TRUNCATE, partitions under their root's name. */
  readonly optionsCurrent: boolean;
}

/** The state of a deployment's logical capture, as `tablecache capture status` shows it. */
export interface LogicalCaptureStatus {
  readonly slotName: string;
  readonly publicationName: string;
  readonly server: CaptureServerState;
  /** `null` when the slot does not exist. */
  readonly slot: LogicalCaptureSlotStatus | null;
  readonly publication: CapturePublicationStatus;
  /** The replica identity of every table the source tables' rows live in. */
  readonly identities: readonly CaptureRelationIdentity[];
  /** Partitions of a partitioned source without the truncate trigger (canonical names): `capture install` adds it. */
  readonly partitionsWithoutTruncateTrigger: readonly string[];
  /** Problems first, then warnings, each with its fix (the checks `capture install` runs). */
  readonly checks: readonly CaptureCheck[];
  /** Slot and publication exist as install makes them, the slot is not lost, and no check found a problem. */
  readonly allCurrent: boolean;
}

function lagSeconds(slot: CaptureSlotState): number | null {
  if (slot.flushLagSeconds !== null) return slot.flushLagSeconds;
  return slot.lagBytes === 0 ? 0 : null;
}

/**
 * Reads the logical capture of `spec`: the slot (active, its process, lag in
 * bytes and seconds, WAL it retains, `wal_status`, `safe_wal_size`), the
 * publication's tables against the configured ones, each table's replica
 * identity, and the findings of install's checks. Read-only; takes no lock.
 *
 * @throws {@link InvalidArgumentError} for a malformed spec; the driver's error when a catalog query fails.
 */
export async function readLogicalCaptureStatus(client: Pick<pg.ClientBase, 'query'>, spec: LogicalCaptureSpec, otherRoles: readonly string[] = []): Promise<LogicalCaptureStatus> {
  checkLogicalCaptureSpec(spec);
  const state = await readLogicalCaptureState(client, spec, otherRoles);
  const configured = spec.sources.map((source) => formatQualifiedName(source));
  const tables = (state.publication?.tables ?? []).map((table) => formatQualifiedName(table));
  const publication: CapturePublicationStatus = {
    exists: state.publication !== null,
    createdByInstall: state.publication?.createdByInstall ?? false,
    tables,
    missing: configured.filter((name) => !tables.includes(name)),
    extra: tables.filter((name) => !configured.includes(name)),
    optionsCurrent: (state.publication?.viaPartitionRoot ?? false) && (state.publication?.publishesEverything ?? false),
  };
  const checks = logicalCaptureChecks(state, spec);
  const slot = state.slot === null ? null : { ...state.slot, lagSeconds: lagSeconds(state.slot) };
  const partitionsWithoutTruncateTrigger = state.partitionTruncate.filter((partition) => !partition.installed).map((partition) => formatQualifiedName(partition.partition));
  const allCurrent =
    slot !== null &&
    slot.walStatus !== 'lost' &&
    publication.exists &&
    publication.missing.length === 0 &&
    publication.extra.length === 0 &&
    publication.optionsCurrent &&
    partitionsWithoutTruncateTrigger.length === 0 &&
    checks.every((check) => check.level !== 'problem');
  return { slotName: spec.slot, publicationName: spec.publication, server: state.server, slot, publication, identities: state.identities, partitionsWithoutTruncateTrigger, checks, allCurrent };
}
