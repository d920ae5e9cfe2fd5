import type { LoadProgressEvent, ReloadKind } from './daemonEvents.ts';

/** Where a daemon is in its life. */
export type DaemonPhase = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Whether a daemon serves current data, and if not, why not. */
export interface DaemonReadiness {
  /** Started, every table loaded, LISTEN connected. */
  readonly ready: boolean;
  readonly phase: DaemonPhase;
  /** Why it is not ready, for operators (empty when ready); never a password. */
  readonly reasons: readonly string[];
  /** Per table: whether readers see a complete load of it. */
  readonly tables: Readonly<Record<string, { readonly loaded: boolean }>>;
}

/**
 * Reloads that mean the daemon lost track of changes (as opposed to a
 * TRUNCATE or a bulk change it follows as usual): until they are done, the
 * data readers see may be behind, so the daemon is not ready.
 */
const CATCH_UP_KINDS: ReadonlySet<ReloadKind> = new Set([
  'listen_lost',
  'queue_full',
  'storage_lost',
  'lease_lost',
  'redis_failover',
  'fell_behind',
  'key_flood',
  'failure',
  'schema_change',
  'capture_restored',
]);

/**
 * Per table, why readers may not see current data while the daemon runs: a
 * catch-up reload pending for a loaded table, or a table not loaded yet
 * (loading, with its progress, or waiting to retry a failed load).
 */
export function tableReadinessReasons(
  tables: Readonly<Record<string, { readonly loaded: boolean }>>,
  pendingReloads: ReadonlyMap<string, { readonly reasons: readonly string[]; readonly kinds: readonly ReloadKind[] }>,
  loading: ReadonlyMap<string, LoadProgressEvent>,
  failedLoads: ReadonlySet<string>,
): string[] {
  const reasons: string[] = [];
  for (const [name, { loaded }] of Object.entries(tables)) {
    const reload = pendingReloads.get(name);
    if (loaded && reload !== undefined && reload.kinds.some((kind) => CATCH_UP_KINDS.has(kind))) {
      reasons.push(`table ${name} may be behind until its reload (${reload.reasons.join('; ')})`);
    }
    if (loaded) continue;
    const progress = loading.get(name);
    if (progress !== undefined) reasons.push(`table ${name} is loading: ${describeProgress(progress)}`);
    else if (failedLoads.has(name)) reasons.push(`table ${name} is not loaded: its last load failed (see the log); retrying`);
    else reasons.push(`table ${name} is not loaded yet`);
  }
  return reasons;
}

function describeProgress({ rows, estimatedRows, elapsedMs }: LoadProgressEvent): string {
  const of = estimatedRows === null ? '' : ` of about ${estimatedRows.toLocaleString('en-US')}`;
  return `${rows.toLocaleString('en-US')}${of} rows read in ${(elapsedMs / 1000).toFixed(1)} s`;
}
