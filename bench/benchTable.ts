/**
 * Formatting and measuring for benchmarks: markdown tables, rates,
 * percentiles and peak memory. Benchmarks print; nothing here asserts.
 */

/** A table cell: numbers are formatted (thousands separators, at most 2 decimals), strings printed as they are. */
export type BenchCell = string | number | bigint | null | undefined;

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

function formatCell(cell: BenchCell): string {
  if (cell === null || cell === undefined) return '';
  if (typeof cell === 'number') return Number.isFinite(cell) ? numberFormat.format(cell) : String(cell);
  if (typeof cell === 'bigint') return numberFormat.format(cell);
  // A pipe would end the cell early.
  return cell.replaceAll('|', '\\|');
}

function isNumeric(cell: BenchCell): boolean {
  return typeof cell === 'number' || typeof cell === 'bigint';
}

/**
 * A markdown table with a `### title` heading. Columns whose cells are all
 * numbers are right-aligned.
 *
 * @example
 * ```ts
 * formatMarkdownTable('Reads', ['reader', 'rows/s'], [['pg-cursor', 512000], ['PostgresAccess', 498000]]);
 * ```
 */
export function formatMarkdownTable(title: string, columns: readonly string[], rows: readonly (readonly BenchCell[])[]): string {
  const cells = rows.map((row) => columns.map((_, i) => formatCell(row[i])));
  const rightAligned = columns.map((_, i) => rows.length > 0 && rows.every((row) => isNumeric(row[i]) || row[i] == null));
  const widths = columns.map((column, i) => Math.max(3, column.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    `| ${values.map((value, i) => (rightAligned[i] ? value.padStart(widths[i]!) : value.padEnd(widths[i]!))).join(' | ')} |`;
  const separator = `| ${widths.map((width, i) => (rightAligned[i] ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width))).join(' | ')} |`;
  return [`### ${title}`, '', line([...columns]), separator, ...cells.map(line)].join('\n');
}

/** Operations per second. */
export function opsPerSecond(operations: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (operations * 1000) / elapsedMs : Number.POSITIVE_INFINITY;
}

/** Milliseconds since `start` (a value from `performance.now()`). */
export function elapsedMs(start: number): number {
  return performance.now() - start;
}

/**
 * The `p`-th percentiles (0–100) of `values`, by nearest rank.
 *
 * @example
 * ```ts
 * percentiles([5, 1, 3], [50, 99]); // { 50: 3, 99: 5 }
 * ```
 */
export function percentiles(values: readonly number[], ps: readonly number[]): Record<number, number> {
  const sorted = [...values].sort((a, b) => a - b);
  const result: Record<number, number> = {};
  for (const p of ps) {
    const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
    result[p] = sorted.length === 0 ? Number.NaN : sorted[rank - 1]!;
  }
  return result;
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return percentiles(values, [50])[50]!;
}

/** Bytes as mebibytes, for a table cell. */
export function mebibytes(bytes: number): number {
  return bytes / (1024 * 1024);
}

/** The highest resident set size this process has had since it started (`getrusage` maxRSS). */
export function processPeakRssBytes(): number {
  // resourceUsage().maxRSS is in kilobytes.
  return process.resourceUsage().maxRSS * 1024;
}

/** A running peak-RSS sampler; see {@link sampleRss}. */
export interface RssSampler {
  /** Stops sampling; returns the RSS when sampling started and the highest seen. */
  stop(): { startBytes: number; peakBytes: number };
}

/**
 * Samples `process.memoryUsage.rss()` every `intervalMs` until stopped, for
 * the peak of one phase (the process-wide `maxRSS` only ever grows, so it
 * cannot tell two phases of one run apart). Timers run while the measured
 * code awaits I/O; a phase that never yields is only sampled at its ends.
 */
export function sampleRss(intervalMs = 5): RssSampler {
  const startBytes = process.memoryUsage.rss();
  let peakBytes = startBytes;
  const sample = () => {
    peakBytes = Math.max(peakBytes, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { startBytes, peakBytes };
    },
  };
}
