import type { EventEmitter } from 'node:events';
import type { Logger } from '../lib/core/logger.ts';
import type { DaemonEvents, LoadProgressEvent } from './daemonEvents.ts';
import type { TerminalStatusLine } from './terminalStatusLine.ts';

/** What a load's progress amounts to. */
export interface LoadProgressFigures {
  readonly rows: number;
  readonly rowsPerSecond: number;
  /** Of the planner's estimate, capped at 99 until the load is done (the estimate may be low); `null` without one. */
  readonly percent: number | null;
  /** Seconds left at the current rate, or `null` when it cannot be told. */
  readonly etaSeconds: number | null;
}

/** Rate, percentage and ETA of a load from its progress event. */
export function loadProgressFigures({ rows, estimatedRows, elapsedMs }: LoadProgressEvent): LoadProgressFigures {
  const rowsPerSecond = elapsedMs > 0 ? Math.round((rows * 1000) / elapsedMs) : 0;
  if (estimatedRows === null || estimatedRows <= 0) return { rows, rowsPerSecond, percent: null, etaSeconds: null };
  const percent = Math.min(99, Math.floor((rows * 100) / estimatedRows));
  const left = estimatedRows - rows;
  const etaSeconds = left > 0 && rowsPerSecond > 0 ? Math.ceil(left / rowsPerSecond) : null;
  return { rows, rowsPerSecond, percent, etaSeconds };
}

const BAR_WIDTH = 16;
const numberFormat = new Intl.NumberFormat('en-US');

/**
 * One line for a terminal, e.g.
 * `users [######----------]  38%  190,000/~500,000 rows  61,000 rows/s  ETA 6 s`.
 */
export function formatLoadProgress(event: LoadProgressEvent): string {
  const { rows, rowsPerSecond, percent, etaSeconds } = loadProgressFigures(event);
  const rate = `${numberFormat.format(rowsPerSecond)} rows/s`;
  if (percent === null) return `${event.table}  ${numberFormat.format(rows)} rows  ${rate}`;
  const filled = Math.round((percent * BAR_WIDTH) / 100);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  const eta = etaSeconds === null ? 'ETA ?' : `ETA ${formatSeconds(etaSeconds)}`;
  return `${event.table} ${bar} ${String(percent).padStart(3)}%  ${numberFormat.format(rows)}/~${numberFormat.format(event.estimatedRows!)} rows  ${rate}  ${eta}`;
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Options of {@link reportLoadProgress}. */
export interface LoadProgressReportOptions {
  readonly logger: Logger;
  /** On a terminal: the line the progress bar is drawn on. Without one, progress is logged. */
  readonly statusLine?: TerminalStatusLine | null;
  /** Without a status line, a `load progress` log line per table at most this often (default 5,000 ms). */
  readonly logIntervalMs?: number;
}

/**
 * Shows the progress of long loads: on a terminal, a progress bar with rows,
 * rate and ETA (from the planner's row estimate); otherwise a `load
 * progress` log line every few seconds. Returns the function that stops it.
 */
export function reportLoadProgress(daemon: EventEmitter<DaemonEvents>, options: LoadProgressReportOptions): () => void {
  const intervalMs = options.logIntervalMs ?? 5_000;
  const lastLogged = new Map<string, number>();
  const onProgress = (event: LoadProgressEvent) => {
    if (options.statusLine) {
      options.statusLine.setStatus(formatLoadProgress(event));
      return;
    }
    const last = lastLogged.get(event.table) ?? 0;
    if (event.elapsedMs - last < intervalMs) return;
    lastLogged.set(event.table, event.elapsedMs);
    options.logger.info({ table: event.table, estimatedRows: event.estimatedRows, ...loadProgressFigures(event) }, 'load progress');
  };
  const onDone = ({ table }: { table: string }) => {
    lastLogged.delete(table);
    options.statusLine?.setStatus('');
  };
  daemon.on('loadProgress', onProgress);
  daemon.on('loaded', onDone);
  daemon.on('reloaded', onDone);
  daemon.on('loadStarted', onDone);
  return () => {
    daemon.off('loadProgress', onProgress);
    daemon.off('loaded', onDone);
    daemon.off('reloaded', onDone);
    daemon.off('loadStarted', onDone);
    options.statusLine?.setStatus('');
  };
}
