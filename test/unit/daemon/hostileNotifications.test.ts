import { describe, expect, it } from 'vitest';
import { classifyNotification } from '../../../daemon/notificationText.ts';
import { MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, parseChangePayload } from '../../../sql-triggers/payload.ts';

/** A change payload of the triggers with `extra` fields, as JSON text. */
function payload(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ v: 1, t: 'public.users', op: 'U', xid: '5', ts: 1.5, c: ['user_id'], k: [[1]], ...extra });
}

describe('classifyNotification under hostile input', () => {
  it('calls the 3 KB payload of 1,500 nested arrays that crashed zod malformed, without parsing it', () => {
    const nested = `${'['.repeat(1500)}${']'.repeat(1500)}`;
    for (const text of [nested, `{"v":1,"t":"public.users","op":"U","xid":"1","ts":1,"c":["a"],"k":[${nested}]}`, '{"a":'.repeat(1500)]) {
      const result = classifyNotification(text);
      expect(result).toMatchObject({ kind: 'malformed', error: expect.stringContaining(`nested deeper than ${MAX_PAYLOAD_DEPTH}`) });
      expect(parseChangePayload(text)).toMatchObject({ ok: false });
    }
  });

  it('names the table of a too-deep payload of the current version, so that its tables are reloaded rather than a change lost', () => {
    const deepKey = `${'['.repeat(40)}1${']'.repeat(40)}`;
    expect(classifyNotification(`{"v":1,"t":"public.users","op":"U","xid":"1","ts":1,"c":["doc"],"k":[[${deepKey}]]}`)).toMatchObject({
      kind: 'malformed',
      table: 'public.users',
    });
    // Not for another version, a table name of the wrong type, or no object at all.
    expect(classifyNotification(`{"v":7,"t":"public.users","k":[${deepKey}]}`)).not.toHaveProperty('table');
    expect(classifyNotification(`{"v":1,"t":5,"k":[${deepKey}]}`)).not.toHaveProperty('table');
    expect(classifyNotification(`[${deepKey}]`)).not.toHaveProperty('table');
  });

  it('survives nesting far past any stack: 100,000 levels', () => {
    expect(() => classifyNotification('['.repeat(100_000))).not.toThrow();
    expect(classifyNotification('['.repeat(100_000)).kind).toBe('malformed');
  });

  it('accepts key values nested up to the depth bound, and counts brackets inside strings as text', () => {
    const value = JSON.parse(`${'['.repeat(MAX_PAYLOAD_DEPTH - 3)}1${']'.repeat(MAX_PAYLOAD_DEPTH - 3)}`);
    expect(classifyNotification(payload({ k: [[value]] })).kind).toBe('change');
    expect(classifyNotification(payload({ k: [['[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{{{{']] })).kind).toBe('change');
  });

  it('calls text larger than a trigger ever sends (an 8,000-byte payload, counted in UTF-8 bytes) malformed', () => {
    const ascii = payload({ pad: 'x'.repeat(MAX_PAYLOAD_BYTES) });
    expect(classifyNotification(ascii)).toMatchObject({ kind: 'malformed', error: expect.stringContaining(`larger than ${MAX_PAYLOAD_BYTES} bytes`) });
    // 3,000 characters, 9,000 bytes.
    const wide = payload({ k: [['€'.repeat(3000)]] });
    expect(classifyNotification(wide).kind).toBe('malformed');
    // Just under the limit, it is read.
    const fits = payload({ k: [['x'.repeat(MAX_PAYLOAD_BYTES - payload({ k: [['']] }).length)]] });
    expect(Buffer.byteLength(fits)).toBe(MAX_PAYLOAD_BYTES);
    expect(classifyNotification(fits).kind).toBe('change');
  });

  it('reads a near-limit array of 1,000 keys, and calls one of them of a wrong type malformed', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => [i]);
    expect(classifyNotification(payload({ k: keys }))).toMatchObject({ kind: 'change', payload: { k: keys } });
    const withWrongTuple = [...keys.slice(0, 999), [1, 2]];
    expect(classifyNotification(payload({ k: withWrongTuple })).kind).toBe('malformed');
  });

  it('calls fields of the wrong type malformed, naming the field', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ t: 42 }, 't'],
      [{ op: 'Q' }, 'op'],
      [{ xid: 'drop table' }, 'xid'],
      [{ ts: 'now' }, 'ts'],
      [{ c: 'user_id' }, 'c'],
      [{ k: { 0: [1] } }, 'k'],
      [{ k: [[]] }, 'k'],
    ];
    for (const [extra, field] of cases) {
      const result = classifyNotification(payload(extra));
      expect(result.kind, JSON.stringify(extra)).toBe('malformed');
      if (result.kind === 'malformed') expect(result.error).toContain(field);
    }
  });

  it('calls non-JSON and non-objects malformed', () => {
    for (const text of ['', ' ', 'nul', '{', '}', ']]]]', '"unterminated', '\u0000', 'NaN', '1e999999', '[]', 'true', '"{}"', '\\u005b']) {
      expect(classifyNotification(text).kind, JSON.stringify(text)).toBe('malformed');
    }
  });

  it('does not let "__proto__" or "constructor" keys reach any prototype', () => {
    const texts = [
      '{"__proto__":{"polluted":1},"v":1,"t":"public.users","op":"U","xid":"1","ts":1,"c":["a"],"k":[[1]]}',
      payload({ k: [[{ __proto__: { polluted: 1 } }]] }).replace('"k":[[{}]]', '"k":[[{"__proto__":{"polluted":1}}]]'),
      '{"v":1,"t":"public.users","op":"U","xid":"1","ts":1,"c":["a"],"k":[[{"constructor":{"prototype":{"polluted":1}}}]]}',
      '{"__proto__":{"v":2},"t":"x"}',
    ];
    for (const text of texts) {
      const result = classifyNotification(text);
      expect(['change', 'malformed']).toContain(result.kind);
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      expect((Object.prototype as unknown as Record<string, unknown>)['v']).toBeUndefined();
    }
    // A "v" only in "__proto__" is not the object's version: no reload of everything.
    expect(classifyNotification('{"__proto__":{"v":2},"t":"x"}').kind).toBe('malformed');
  });

  it('cuts what it reports of an unknown version to a bounded length', () => {
    const result = classifyNotification(JSON.stringify({ v: 'x'.repeat(4000), t: 'y'.repeat(3000) }));
    expect(result).toMatchObject({ kind: 'unknownVersion', table: null });
    if (result.kind === 'unknownVersion') expect(String(result.version).length).toBeLessThanOrEqual(201);
  });
});
