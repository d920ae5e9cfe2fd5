import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { formatLoadProgress, loadProgressFigures, reportLoadProgress } from '../../../daemon/loadProgressReport.ts';
import { TerminalStatusLine } from '../../../daemon/terminalStatusLine.ts';

class FakeTerminal {
  columns = 120;
  written = '';
  write(text: string): boolean {
    this.written += text;
    return true;
  }
}

function recordingLogger() {
  const lines: { fields: Record<string, unknown>; message: string | undefined }[] = [];
  const record = (fields: object, message?: string) => void lines.push({ fields: fields as Record<string, unknown>, message });
  return { lines, logger: { debug: record, info: record, warn: record, error: record } };
}

describe('load progress figures', () => {
  it('computes the rate, the share of the planner estimate and the time left', () => {
    expect(loadProgressFigures({ table: 'users', rows: 50_000, estimatedRows: 200_000, elapsedMs: 2_000 })).toEqual({
      rows: 50_000,
      rowsPerSecond: 25_000,
      percent: 25,
      etaSeconds: 6,
    });
  });

  it('stays below 100% and gives no ETA when the estimate was too low', () => {
    expect(loadProgressFigures({ table: 'users', rows: 300, estimatedRows: 200, elapsedMs: 1_000 })).toMatchObject({ percent: 99, etaSeconds: null });
  });

  it('gives neither share nor ETA without an estimate', () => {
    expect(loadProgressFigures({ table: 'users', rows: 10, estimatedRows: null, elapsedMs: 0 })).toEqual({ rows: 10, rowsPerSecond: 0, percent: null, etaSeconds: null });
  });

  it('draws a bar with rows, rate and ETA', () => {
    expect(formatLoadProgress({ table: 'users', rows: 190_000, estimatedRows: 500_000, elapsedMs: 3_000 })).toBe(
      'users [######----------]  38%  190,000/~500,000 rows  63,333 rows/s  ETA 5 s',
    );
    expect(formatLoadProgress({ table: 'users', rows: 1_000, estimatedRows: 10_000_000, elapsedMs: 1_000 })).toMatch(/ETA 2 h 46 min$/);
    expect(formatLoadProgress({ table: 'users', rows: 1_000, estimatedRows: null, elapsedMs: 1_000 })).toBe('users  1,000 rows  1,000 rows/s');
  });
});

describe('reportLoadProgress', () => {
  it('logs a load progress line per table at most every interval when there is no terminal', () => {
    const daemon = new EventEmitter<DaemonEvents>();
    const { lines, logger } = recordingLogger();
    reportLoadProgress(daemon, { logger, logIntervalMs: 5_000 });
    for (const elapsedMs of [250, 4_000, 5_100, 7_000, 10_200]) daemon.emit('loadProgress', { table: 'users', rows: elapsedMs * 10, estimatedRows: 200_000, elapsedMs });
    expect(lines.map((line) => line.fields['rows'])).toEqual([51_000, 102_000]);
    expect(lines[0]).toMatchObject({ message: 'load progress', fields: { table: 'users', estimatedRows: 200_000, percent: 25, rowsPerSecond: 10_000 } });
  });

  it('draws the bar on the status line instead, and removes it when the table is loaded', () => {
    const daemon = new EventEmitter<DaemonEvents>();
    const terminal = new FakeTerminal();
    const { lines, logger } = recordingLogger();
    reportLoadProgress(daemon, { logger, statusLine: new TerminalStatusLine(terminal) });
    daemon.emit('loadProgress', { table: 'users', rows: 5, estimatedRows: 10, elapsedMs: 1_000 });
    expect(terminal.written).toBe('\r\x1b[2Kusers [########--------]  50%  5/~10 rows  5 rows/s  ETA 1 s');
    daemon.emit('loaded', { table: 'users', records: 10, ms: 2_000, reasons: ['start'], kinds: ['start'] });
    expect(terminal.written.endsWith('\r\x1b[2K')).toBe(true);
    expect(lines).toEqual([]);
  });
});

describe('TerminalStatusLine', () => {
  it('writes log lines above the status line and draws it again', () => {
    const terminal = new FakeTerminal();
    const line = new TerminalStatusLine(terminal);
    line.write('first\n');
    line.setStatus('50%');
    line.write('second\n');
    expect(terminal.written).toBe('first\n\r\x1b[2K50%\r\x1b[2Ksecond\n50%');
  });

  it('cuts the status to the terminal width so that it never wraps', () => {
    const terminal = new FakeTerminal();
    terminal.columns = 30;
    new TerminalStatusLine(terminal).setStatus('x'.repeat(100));
    expect(terminal.written).toBe(`\r\x1b[2K${'x'.repeat(28)}…`);
  });
});
