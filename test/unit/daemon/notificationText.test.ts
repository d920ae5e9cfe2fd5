import { afterEach, describe, expect, it, vi } from 'vitest';
import { classifyNotification } from '../../../daemon/notificationText.ts';

describe('classifyNotification', () => {
  it('reads a change payload of the triggers', () => {
    const text = JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: '5', ts: 1.5, c: ['user_id'], k: [[1]] });
    expect(classifyNotification(text)).toMatchObject({ kind: 'change', payload: { op: 'U', k: [[1]] } });
  });

  it('reads a barrier', () => {
    expect(classifyNotification('{"v":1,"op":"B","id":"abc-1"}')).toEqual({ kind: 'barrier', payload: { v: 1, op: 'B', id: 'abc-1' } });
  });

  it('tells a payload of another version, with the table it names, from a malformed one', () => {
    expect(classifyNotification('{"v":2,"t":"public.users","op":"Z"}')).toEqual({ kind: 'unknownVersion', version: 2, table: 'public.users' });
    expect(classifyNotification('{"v":"2"}')).toMatchObject({ kind: 'unknownVersion', table: null });
  });

  it('calls text that is not a payload malformed, with an excerpt of at most 200 characters', () => {
    for (const text of ['garbage', '[1]', 'null', '{"v":1,"op":"U"}', '', `"${'x'.repeat(1000)}"`]) {
      const result = classifyNotification(text);
      expect(result.kind, text).toBe('malformed');
      if (result.kind === 'malformed') expect(result.excerpt.length).toBeLessThanOrEqual(201);
    }
  });
});

describe('classifyNotification parses once', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('runs JSON.parse once per notification, whatever it turns out to be', () => {
    const parse = vi.spyOn(JSON, 'parse');
    const texts = [
      JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: '5', ts: 1.5, c: ['user_id'], k: [[1]] }),
      '{"v":1,"op":"B","id":"abc-1"}',
      '{"v":2,"t":"public.users","op":"Z"}',
      '{"v":1,"op":"U"}',
      `{"v":1,"t":"public.users","k":${'['.repeat(40)}${']'.repeat(40)}}`,
    ];
    for (const text of texts) {
      parse.mockClear();
      classifyNotification(text);
      expect(parse, text).toHaveBeenCalledTimes(1);
    }
  });
});
