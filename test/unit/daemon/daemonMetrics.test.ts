import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DaemonEvents } from '../../../daemon/daemonEvents.ts';
import { DaemonMetrics, type MetricsSource } from '../../../daemon/http/daemonMetrics.ts';
import type { DaemonReadiness } from '../../../daemon/daemonReadiness.ts';

class FakeDaemon extends EventEmitter<DaemonEvents> implements MetricsSource {
  ready = true;
  counts = new Map<string, number | null>([['users', 42]]);

  readiness(): DaemonReadiness {
    return { ready: this.ready, phase: 'running', reasons: this.ready ? [] : ['x'], tables: {} };
  }

  async recordCounts(): Promise<Map<string, number | null>> {
    return this.counts;
  }
}

async function scrape(metrics: DaemonMetrics): Promise<Map<string, number>> {
  const series = new Map<string, number>();
  for (const line of (await metrics.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

describe('DaemonMetrics', () => {
  it('counts notifications by kind, with every kind present from the start', async () => {
    const daemon = new FakeDaemon();
    const metrics = new DaemonMetrics(daemon, { processMetrics: false });
    daemon.emit('notificationReceived', { kind: 'change' });
    daemon.emit('notificationReceived', { kind: 'change' });
    daemon.emit('notificationReceived', { kind: 'unknownVersion' });
    const series = await scrape(metrics);
    expect(series.get('tablecache_notifications_received_total{kind="change"}')).toBe(2);
    expect(series.get('tablecache_notifications_received_total{kind="unknown_version"}')).toBe(1);
    expect(series.get('tablecache_notifications_received_total{kind="malformed"}')).toBe(0);
  });

  it('observes one lag per change of a batch, from its trigger time to the event', async () => {
    const daemon = new FakeDaemon();
    const metrics = new DaemonMetrics(daemon, { processMetrics: false });
    const now = Date.now();
    daemon.emit('batchApplied', {
      notifications: 3,
      receivedKeys: 3,
      tables: [{ table: 'users', action: 'refresh', keys: 3, readAheadKeys: 0, expired: 3, loaded: 2 }],
      barriers: 0,
      ms: 4,
      tickMs: 0.2,
      ticks: 1,
      cutProvenBy: 'tick',
      oldestChangeAt: now - 20_000,
      changeTimes: [now - 20_000, now - 3, now + 50],
    });
    const series = await scrape(metrics);
    expect(series.get('tablecache_invalidation_lag_seconds_count')).toBe(3);
    // A clock ahead of ours counts as no lag, never as a negative one.
    expect(series.get('tablecache_invalidation_lag_seconds_bucket{le="0.001"}')).toBe(1);
    expect(series.get('tablecache_invalidation_lag_seconds_bucket{le="10"}')).toBe(2);
    expect(series.get('tablecache_refreshed_keys_total{table="users"}')).toBe(3);
    expect(series.get('tablecache_records_refreshed_total{table="users"}')).toBe(2);
    expect(series.get('tablecache_batches_total')).toBe(1);
  });

  it('counts a load under each of its reasons and keeps its rows and duration', async () => {
    const daemon = new FakeDaemon();
    const metrics = new DaemonMetrics(daemon, { processMetrics: false });
    daemon.emit('loaded', { table: 'users', records: 10, ms: 1500, reasons: ['start'], kinds: ['start'] });
    daemon.emit('reloaded', { table: 'users', records: 12, ms: 20, reasons: ['a', 'b'], kinds: ['truncate', 'listen_lost'] });
    const series = await scrape(metrics);
    expect(series.get('tablecache_reloads_total{table="users",reason="start"}')).toBe(1);
    expect(series.get('tablecache_reloads_total{table="users",reason="truncate"}')).toBe(1);
    expect(series.get('tablecache_reloads_total{table="users",reason="listen_lost"}')).toBe(1);
    expect(series.get('tablecache_load_rows{table="users"}')).toBe(12);
    expect(series.get('tablecache_load_duration_seconds_count{table="users"}')).toBe(2);
  });

  it('counts errors and reconnects by source, and reads records, readiness and queue usage', async () => {
    const daemon = new FakeDaemon();
    const metrics = new DaemonMetrics(daemon, { processMetrics: false });
    daemon.emit('error', { error: new Error('x'), during: 'refreshing table users', table: 'users', source: 'redis' });
    daemon.emit('error', { error: new Error('y'), during: 'z', source: null });
    daemon.emit('connectionLost', { source: 'postgres', attempt: 1 });
    daemon.emit('notificationQueueUsage', { usage: 0.125 });
    daemon.ready = false;
    daemon.counts.set('cities', null);
    const series = await scrape(metrics);
    expect(series.get('tablecache_errors_total{source="redis"}')).toBe(1);
    expect(series.get('tablecache_errors_total{source="other"}')).toBe(1);
    expect(series.get('tablecache_errors_total{source="postgres"}')).toBe(0);
    expect(series.get('tablecache_reconnects_total{source="postgres"}')).toBe(1);
    expect(series.get('tablecache_notification_queue_usage')).toBe(0.125);
    expect(series.get('tablecache_records{table="users"}')).toBe(42);
    expect(series.has('tablecache_records{table="cities"}')).toBe(false);
    expect(series.get('tablecache_ready')).toBe(0);
  });

  it('gives each table the age of its oldest change not yet visible, in seconds, read at scrape time', async () => {
    const daemon = Object.assign(new FakeDaemon(), { ages: new Map([['users', 2500], ['orders', 0]]) });
    const source = Object.assign(daemon, { oldestPendingChangeAges: () => daemon.ages });
    const metrics = new DaemonMetrics(source, { processMetrics: false });
    let series = await scrape(metrics);
    expect(series.get('tablecache_oldest_pending_change_seconds{table="users"}')).toBe(2.5);
    expect(series.get('tablecache_oldest_pending_change_seconds{table="orders"}')).toBe(0);
    daemon.ages = new Map([['users', 0], ['orders', 0]]);
    series = await scrape(metrics);
    expect(series.get('tablecache_oldest_pending_change_seconds{table="users"}')).toBe(0);
  });

  it('uses a registry of its own and stops observing when closed', async () => {
    const daemon = new FakeDaemon();
    const first = new DaemonMetrics(daemon, { processMetrics: false });
    const second = new DaemonMetrics(daemon, { processMetrics: false });
    first.close();
    daemon.emit('notificationReceived', { kind: 'barrier' });
    expect((await scrape(first)).get('tablecache_notifications_received_total{kind="barrier"}')).toBe(0);
    expect((await scrape(second)).get('tablecache_notifications_received_total{kind="barrier"}')).toBe(1);
    expect(daemon.listenerCount('notificationReceived')).toBe(1);
  });
});
