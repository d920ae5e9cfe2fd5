import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { parseChangePayload, type ChangePayload, type KeyTuple } from '../../../sql-triggers/payload.ts';
import { waitFor } from '../../support/waitFor.ts';

/**
 * A LISTEN session on a trigger channel that collects raw payloads. Tests
 * call {@link ChangeListener.drain} after their writes: it sends a marker
 * notification and waits for it; since notifications arrive in commit order,
 * everything committed before the marker has arrived by then, and "nothing
 * arrived" is a real observation, not a timeout.
 */
export class ChangeListener {
  private readonly received: string[] = [];

  private constructor(
    private readonly client: pg.Client,
    readonly channel: string,
  ) {
    client.on('notification', (message) => {
      if (message.channel === channel) this.received.push(message.payload ?? '');
    });
  }

  static async listen(url: string, channel: string): Promise<ChangeListener> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    return new ChangeListener(client, channel);
  }

  /** The raw payloads that arrived before a fresh marker, which `writer` sends after every earlier commit. */
  async drainRaw(writer: pg.Pool | pg.ClientBase): Promise<string[]> {
    const marker = `marker-${randomBytes(6).toString('hex')}`;
    await writer.query('SELECT pg_notify($1, $2)', [this.channel, marker]);
    const index = await waitFor(`marker ${marker} on ${this.channel}`, () => {
      const at = this.received.indexOf(marker);
      return at >= 0 ? at : undefined;
    });
    const payloads = this.received.slice(0, index);
    this.received.splice(0, index + 1);
    return payloads;
  }

  /**
   * Like {@link drainRaw}, each payload parsed (a test fails on a malformed
   * one), with `k` and `ok` sorted: they are sets, sent in no particular order.
   */
  async drain(writer: pg.Pool | pg.ClientBase): Promise<ChangePayload[]> {
    return (await this.drainRaw(writer)).map((text) => {
      const parsed = parseChangePayload(text);
      if (!parsed.ok) throw new Error(parsed.error);
      const payload = parsed.payload;
      if (payload.op === 'T' || payload.op === 'X') return payload;
      return { ...payload, k: sortTuples(payload.k), ...(payload.ok === undefined ? {} : { ok: sortTuples(payload.ok) }) };
    });
  }

  async close(): Promise<void> {
    await this.client.end();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function sortTuples(tuples: readonly KeyTuple[]): KeyTuple[] {
  return [...tuples].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b), 'en', { numeric: true }));
}
