/** Erases the cursor's line and returns to its start. */
const ERASE_LINE = '\r\x1b[2K';

/**
 * One status line (a progress bar) kept at the bottom of a terminal while
 * log lines scroll above it: every write erases the status line, writes the
 * text, and draws the status line again. The status is cut to the
 * terminal's width, since a wrapped line could not be erased.
 */
export class TerminalStatusLine {
  private status = '';

  constructor(private readonly stream: Pick<NodeJS.WriteStream, 'write' | 'columns'>) {}

  /** Writes `text` (whole lines) above the status line. */
  write(text: string): void {
    if (this.status === '') {
      this.stream.write(text);
      return;
    }
    this.stream.write(`${ERASE_LINE}${text}${this.status}`);
  }

  /** Shows `text` as the status line; `''` removes it. */
  setStatus(text: string): void {
    // A pseudo-terminal may report 0 columns.
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    const status = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    if (status === this.status) return;
    this.stream.write(`${ERASE_LINE}${status}`);
    this.status = status;
  }
}
