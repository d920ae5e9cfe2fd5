import type { CaptureRelationIdentity, LogicalCaptureStatus } from '../sql-triggers/index.ts';
import { formatTextTable } from './textTable.ts';

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** `123456789 (118 MB)`: exact for scripts reading the text, rounded for people. */
function bytes(value: number | null): string {
  if (value === null) return 'unknown';
  let scaled = value;
  let unit = 0;
  while (Math.abs(scaled) >= 1024 && unit < UNITS.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value} (${scaled.toFixed(scaled < 10 ? 1 : 0)} ${UNITS[unit]})`;
}

function identityText(relation: CaptureRelationIdentity): string {
  if (relation.identity === null) return 'table does not exist';
  if (relation.identity === 'full') return 'FULL (old values of every column)';
  if (relation.identity === 'nothing') return 'NOTHING (no old values; UPDATE and DELETE refused)';
  if (relation.identityColumns?.length === 0) return 'DEFAULT without a primary key (UPDATE and DELETE refused)';
  return `${relation.identity === 'index' ? 'USING INDEX' : 'DEFAULT (primary key)'}: ${relation.identityColumns?.join(', ')}`;
}

function slotRows(status: LogicalCaptureStatus): string[][] {
  const { slot, server } = status;
  if (slot === null) return [['slot', `${status.slotName}: does not exist (run \`tablecache capture install\`)`]];
  const lagSeconds =
    slot.lagSeconds === null ? `unknown (${slot.active ? 'no reply from the consumer since the last write' : 'nothing streams from the slot'})` : `${slot.lagSeconds} s`;
  const safe = slot.safeWalSizeBytes === null ? `unlimited (max_slot_wal_keep_size = ${server.maxSlotWalKeepSizeMb < 0 ? '-1' : `${server.maxSlotWalKeepSizeMb} MB`})` : bytes(slot.safeWalSizeBytes);
  return [
    ['slot', `${status.slotName}: ${slot.active ? `active (pid ${slot.activePid})` : 'inactive'}`],
    ['confirmed-flush lag', `${bytes(slot.lagBytes)}; ${lagSeconds}`],
    ['retained WAL', bytes(slot.retainedWalBytes)],
    ['wal_status', `${slot.walStatus ?? 'none'}; safe_wal_size ${safe}`],
    ['confirmed_flush_lsn', `${slot.confirmedFlushLsn ?? '-'} (restart_lsn ${slot.restartLsn ?? '-'})`],
  ];
}

function publicationRow(status: LogicalCaptureStatus): string[] {
  const { publication } = status;
  if (!publication.exists) return ['publication', `${status.publicationName}: does not exist (run \`tablecache capture install\`)`];
  const parts = [
    `${publication.tables.length} table(s)`,
    publication.missing.length === 0 ? 'none missing' : `missing ${publication.missing.join(', ')}`,
    publication.extra.length === 0 ? 'none extra' : `extra ${publication.extra.join(', ')}`,
    ...(publication.optionsCurrent ? [] : ['options differ from install\'s']),
    ...(publication.createdByInstall ? [] : ['not created by tablecache']),
  ];
  return ['publication', `${status.publicationName}: ${parts.join('; ')}`];
}

/** The human form of `tablecache capture status` for the logical capture. */
export function formatLogicalCaptureStatus(status: LogicalCaptureStatus): string {
  const overview = formatTextTable(['', ''], [['wal_level', status.server.walLevel], ...slotRows(status), publicationRow(status)]).split('\n').slice(2).join('\n');
  const identities = formatTextTable(
    ['SOURCE TABLE', 'TABLE', 'REPLICA IDENTITY'],
    status.identities.map((relation) => [relation.source, relation.name === relation.source ? '' : relation.name, identityText(relation)]),
  );
  const checks = status.checks.map((check) => `${check.level === 'problem' ? 'problem' : 'warning'}: ${check.message}\n  Fix: ${check.fix}`);
  const summary = status.allCurrent
    ? 'The logical capture is in place.'
    : status.checks.some((check) => check.level === 'problem')
      ? 'Postgres is not ready for the logical capture: fix the problems above, then run `tablecache capture install`.'
      : 'Not in place: run `tablecache capture install`.';
  return `${overview}\n\n${identities}\n${checks.length === 0 ? '' : `\n${checks.join('\n')}\n`}\n${summary}\n`;
}
