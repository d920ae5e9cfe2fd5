import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../daemon/config/index.ts';
import { CaptureCheck } from '../../../daemon/captureCheck.ts';
import { silentLogger } from '../../../lib/core/logger.ts';

/**
 * A pooled client whose connection is cut during its first query, the way
 * pg reports it: an 'error' event on the client from a socket callback (off
 * the query's call stack), then the query's rejection.
 */
class CutClient extends EventEmitter {
  readonly released: (Error | boolean | undefined)[] = [];

  query(): Promise<never> {
    const error = new Error('Connection terminated unexpectedly');
    return new Promise((_, reject) =>
      setImmediate(() => {
        this.emit('error', error);
        reject(error);
      }),
    );
  }

  release(error?: Error | boolean): void {
    this.released.push(error);
  }
}

describe('CaptureCheck', () => {
  it('survives Postgres cutting the connection of a check in flight: the check fails, is logged, and the client is discarded', async () => {
    const config = parseConfig(
      {
        postgres: { url: 'postgres://localhost/app' },
        redis: { url: 'redis://localhost' },
        tables: { users: { query: 'SELECT 1', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } },
      },
      { file: 'cut.yaml', env: {} },
    );
    const client = new CutClient();
    const pool = { connect: () => Promise.resolve(client) } as unknown as pg.Pool;
    const warn = vi.fn();
    const check = new CaptureCheck({ config, pool, intervalMs: 60_000, logger: { ...silentLogger, warn }, events: new EventEmitter(), requestReload: () => {} });

    // Before the fix the 'error' event had no listener: an uncaught exception that ended the daemon (and fails this file).
    await check.check();
    await check.close();

    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ err: expect.any(Error) }), expect.stringContaining('could not check the change capture'));
    expect(client.released).toEqual([expect.objectContaining({ message: 'Connection terminated unexpectedly' })]);
  });
});
