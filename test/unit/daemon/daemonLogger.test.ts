import { describe, expect, it } from 'vitest';
import { createDaemonLogger } from '../../../daemon/daemonLogger.ts';

/** A stand-in for a terminal: collects what is written. */
function terminal(): NodeJS.WriteStream & { text: string } {
  const stream = { text: '', columns: 80, isTTY: true, write: (chunk: string) => ((stream.text += chunk), true) };
  return stream as unknown as NodeJS.WriteStream & { text: string };
}

describe('createDaemonLogger', () => {
  it('writes readable lines through pino-pretty (loaded only now) and a status line when asked for pretty output', () => {
    const stream = terminal();
    const { logger, statusLine } = createDaemonLogger({ level: 'info', pretty: true, stream });
    logger.info({ table: 'users' }, 'table loaded');
    expect(statusLine).not.toBeNull();
    expect(stream.text).toContain('table loaded');
    expect(stream.text).not.toContain('"msg"');
  });

  it('writes one JSON line per event, with the service name and without passwords, when not pretty', () => {
    const stream = terminal();
    const { logger, statusLine } = createDaemonLogger({ level: 'info', pretty: false, stream });
    logger.info({ table: 'users', password: 'hunter2' }, 'table loaded');
    expect(statusLine).toBeNull();
    expect(JSON.parse(stream.text)).toMatchObject({ msg: 'table loaded', table: 'users', service: 'tablecache-daemon', password: '***' });
  });
});
