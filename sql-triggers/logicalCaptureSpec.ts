import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../lib/core/errors.ts';
import { formatQualifiedName } from './identifiers.ts';
import type { PartitionTruncateSpec } from './partitionTruncateTriggers.ts';
import type { SourceTableSpec } from './triggerSpec.ts';

/**
 * Everything the logical capture's install, status and uninstall work from:
 * plain values, never the config object.
 */
export interface LogicalCaptureSpec {
  /** The logical replication slot (plugin `pgoutput`) the daemon streams from. */
  readonly slot: string;
  /** The publication naming the source tables; pgoutput sends only their changes. */
  readonly publication: string;
  /**
   * The source tables, each once, with the union of the key columns every
   * cached table reads from it, and a column filter only when every cached
   * table filters (as for the triggers): the replica identity check needs both.
   */
  readonly sources: readonly SourceTableSpec[];
  /**
   * Where the partitions' TRUNCATE triggers call their function and which
   * channel they send on (`triggers.schema`, `triggers.channel`): without
   * it, a TRUNCATE of one partition alone is not captured (Postgres does not
   * publish it through the root).
   */
  readonly partitionTruncate?: PartitionTruncateSpec;
}

// Postgres allows slot names of lower-case letters, digits and _ only (at most
// 63 bytes); publications take any identifier, but the same plain form reads
// well in every catalog view and needs no quoting in psql.
const CAPTURE_NAME = /^[a-z0-9_]{1,63}$/;

function checkCaptureName(value: string, what: string, configKey: string): string {
  if (!CAPTURE_NAME.test(value)) {
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(value)} is not allowed: Postgres takes lower-case letters, digits and _ only, at most 63 characters. Set ${configKey} to such a name.`,
    );
  }
  return value;
}

/**
 * Checks a replication slot name.
 *
 * @throws {@link InvalidArgumentError} when it is not lower-case letters, digits and _, at most 63 characters.
 */
export function checkSlotName(slot: string): string {
  return checkCaptureName(slot, 'Replication slot name', 'capture.slot');
}

/**
 * Checks a publication name (held to the slot's rules, so it never needs quotes).
 *
 * @throws {@link InvalidArgumentError} when it is not lower-case letters, digits and _, at most 63 characters.
 */
export function checkPublicationName(publication: string): string {
  return checkCaptureName(publication, 'Publication name', 'capture.publication');
}

// Room for the channel (at most 48 characters), "_" and this much of the prefix.
const PREFIX_PART_LENGTH = 14;

/**
 * The default slot and publication name of a deployment: its NOTIFY channel
 * (which already tells deployments on one database apart) and its Redis key
 * prefix, so that two deployments differing only in key prefix do not share a
 * slot. The prefix is folded to `[a-z0-9_]`; when folding loses anything
 * (`App:` and `app:` would meet), eight hex digits of its hash stand for it.
 *
 * @example defaultCaptureName('tablecache_changes', 'tablecache:') // 'tablecache_changes_tablecache'
 */
export function defaultCaptureName(channel: string, keyPrefix: string): string {
  const folded = keyPrefix.replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  // Only a trailing separator may be folded away without losing what sets two prefixes apart.
  const lossless = folded === keyPrefix.replace(/[:._-]+$/, '') && folded.length > 0 && folded.length <= PREFIX_PART_LENGTH;
  const part = lossless ? folded : createHash('sha256').update(keyPrefix).digest('hex').slice(0, 8);
  return `${channel}_${part}`;
}

/**
 * Checks a spec's names and that no source table is listed twice.
 *
 * @throws {@link InvalidArgumentError} naming the bad value.
 */
export function checkLogicalCaptureSpec(spec: LogicalCaptureSpec): LogicalCaptureSpec {
  checkSlotName(spec.slot);
  checkPublicationName(spec.publication);
  if (spec.sources.length === 0) throw new InvalidArgumentError('A logical capture needs at least one source table.');
  const seen = new Set<string>();
  for (const source of spec.sources) {
    const name = formatQualifiedName(source);
    if (seen.has(name)) throw new InvalidArgumentError(`Source table ${name} is listed twice; merge its key columns into one entry.`);
    seen.add(name);
  }
  return spec;
}
