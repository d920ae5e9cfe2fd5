import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { NotificationQueueWatch } from '../../../daemon/notificationQueueWatch.ts';

function watch(readings: number[] = []) {
  const lines: { level: string; message: string | undefined }[] = [];
  const at = (level: string) => (_fields: object, message?: string) => void lines.push({ level, message });
  const resumed: number[] = [];
  const events = new EventEmitter<DaemonEvents>();
  const usages: number[] = [];
  events.on('notificationQueueUsage', ({ usage }) => usages.push(usage));
  const pool = { query: async () => ({ rows: [{ usage: readings.shift() }] }) } as unknown as pg.Pool;
  const subject = new NotificationQueueWatch({
    pool,
    silentAt: 0.5,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    events,
    onTriggersResumed: (peak) => resumed.push(peak),
  });
  return { subject, lines, resumed, usages };
}

describe('NotificationQueueWatch', () => {
  it('logs nothing while the queue is nearly empty', () => {
    const { subject, lines } = watch();
    for (const usage of [0, 0.01, 0.2]) subject.observe(usage);
    expect(lines).toEqual([]);
  });

  it('warns once when the queue fills past half the silence threshold, and says when it drained', () => {
    const { subject, lines } = watch();
    for (const usage of [0.3, 0.35, 0.4, 0.1]) subject.observe(usage);
    expect(lines.map((line) => line.level)).toEqual(['warn', 'info']);
    expect(lines[0]!.message).toMatch(/filling up/);
  });

  it('reports the triggers falling silent once, and requests one resync with the peak when they send again', () => {
    const { subject, lines, resumed } = watch();
    for (const usage of [0.3, 0.5, 0.7, 0.6, 0.45, 0.2]) subject.observe(usage);
    expect(resumed).toEqual([0.7]);
    expect(lines.map((line) => line.level)).toEqual(['warn', 'error', 'warn', 'info']);
    expect(lines[1]!.message).toMatch(/fallen silent/);
  });

  it('emits every reading for the metric', async () => {
    const { subject, usages } = watch([0.25, 0.5]);
    await subject.poll();
    await subject.poll();
    expect(usages).toEqual([0.25, 0.5]);
  });
});
