import { afterEach, describe, expect, it } from 'vitest';
import { ReloadThrottle, type DeferredReload } from '../../../daemon/reloadThrottle.ts';
import { waitFor } from '../../support/waitFor.ts';

const throttles: ReloadThrottle[] = [];

function throttle(minIntervalMs: number, queued: (table: string) => boolean = () => false) {
  const due: { table: string; reload: DeferredReload; barriers: readonly string[] }[] = [];
  const created = new ReloadThrottle({ minIntervalMs, onDue: (table, reload, barriers) => due.push({ table, reload, barriers }), queued });
  throttles.push(created);
  return { throttle: created, due };
}

afterEach(() => {
  for (const created of throttles.splice(0)) created.close();
});

describe('ReloadThrottle', () => {
  it('admits a table never reloaded, then defers within the interval, joining every further request', () => {
    const { throttle: t } = throttle(60_000);
    expect(t.admit('users', 'coarse', 'bulk_change')).toBe(true);
    t.reloadStarted('users', t.requestMark);
    expect(t.admit('users', 'coarse again', 'bulk_change')).toBe(false);
    expect(t.admit('users', 'a new version', 'unknown_payload_version')).toBe(false);
    expect([...t.deferred().get('users')!.reasons]).toEqual(['coarse again', 'a new version']);
    expect([...t.deferred().get('users')!.kinds]).toEqual(['bulk_change', 'unknown_payload_version']);
  });

  it('keeps at most five distinct reasons of a deferred reload, however many forged ones arrive', () => {
    const { throttle: t } = throttle(60_000);
    t.reloadStarted('users', t.requestMark);
    for (let i = 0; i < 1000; i++) t.admit('users', `forged ${i}`, 'unmappable_key');
    expect(t.deferred().get('users')!.reasons.size).toBe(5);
  });

  it('holds a barrier until every reload deferred when it arrived has started', () => {
    const { throttle: t } = throttle(60_000);
    expect(t.holdBarrier('before')).toBe(false);
    t.reloadStarted('a', t.requestMark);
    t.reloadStarted('b', t.requestMark);
    t.admit('a', 'coarse', 'bulk_change');
    t.admit('b', 'coarse', 'bulk_change');
    expect(t.holdBarrier('x')).toBe(true);
    expect(t.reloadStarted('a', t.requestMark)).toEqual([]);
    expect(t.reloadStarted('b', t.requestMark)).toEqual(['x']);
    expect(t.deferred().size).toBe(0);
  });

  it('hands a deferred reload, with the barriers that waited for it, to onDue once the interval is over', async () => {
    const { throttle: t, due } = throttle(20);
    t.reloadStarted('users', t.requestMark);
    expect(t.admit('users', 'coarse', 'truncate')).toBe(false);
    t.holdBarrier('b');
    await waitFor('the deferred reload to be due', () => due.length === 1);
    expect(due[0]).toMatchObject({ table: 'users', barriers: ['b'] });
    expect([...due[0]!.reload.kinds]).toEqual(['truncate']);
    expect(t.deferred().size).toBe(0);
  });

  // A step took the admitted reload (its snapshot opening, or behind a slow refresh): a second admission made two
  // reloads back to back, 11 in a window that allows 10 (hostileNotifications under load).
  it('defers a request made after a step took the admitted reload to one interval after that reload starts', async () => {
    const { throttle: t, due } = throttle(100);
    expect(t.admit('users', 'coarse', 'bulk_change')).toBe(true);
    const step = t.requestMark;
    expect(t.admit('users', 'forged', 'unknown_payload_version')).toBe(false);
    t.holdBarrier('b');
    expect(t.reloadStarted('users', step)).toEqual([]);
    expect([...t.deferred().get('users')!.reasons]).toEqual(['forged']);
    await waitFor('the deferred reload to be due', () => due.length === 1);
    expect(due[0]).toMatchObject({ table: 'users', barriers: ['b'] });
    // Queued by onDue and not started yet: the same holds for it.
    expect(t.admit('users', 'forged again', 'unknown_payload_version')).toBe(false);
  });

  // A key flood while a recovery reload (storage lost, a failure: not admitted by the throttle) had its snapshot open
  // dropped its queued keys for a deferred reload; that reload's start dropped the deferral, and the keys committed
  // after its snapshot were never applied.
  it('keeps a reload asked for after the starting step was taken, due one interval after that start', async () => {
    const { throttle: t, due } = throttle(100);
    t.reloadStarted('users', t.requestMark);
    const recoveryStep = t.requestMark;
    expect(t.admit('users', 'key flood', 'key_flood')).toBe(false);
    expect(t.reloadStarted('users', recoveryStep)).toEqual([]);
    expect([...t.deferred().get('users')!.reasons]).toEqual(['key flood']);
    await waitFor('the kept reload to be due', () => due.length === 1);
    expect(due[0]!.reload.kinds).toEqual(new Set(['key_flood']));
  });

  it('drops a deferred reload asked for before the starting step was taken: its snapshot holds what it stood for', () => {
    const { throttle: t } = throttle(60_000);
    t.reloadStarted('users', t.requestMark);
    expect(t.admit('users', 'coarse', 'bulk_change')).toBe(false);
    t.reloadStarted('users', t.requestMark);
    expect(t.deferred().size).toBe(0);
  });

  it('lets a request join an admitted reload that is still queued', () => {
    const { throttle: t } = throttle(60_000, () => true);
    expect(t.admit('users', 'coarse', 'bulk_change')).toBe(true);
    expect(t.admit('users', 'coarse again', 'bulk_change')).toBe(true);
    expect(t.deferred().size).toBe(0);
  });

  it('with an interval of 0 admits every request', () => {
    const { throttle: t } = throttle(0);
    t.reloadStarted('users', t.requestMark);
    expect(t.admit('users', 'coarse', 'bulk_change')).toBe(true);
  });
});
