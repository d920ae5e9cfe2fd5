import { describe, expect, it } from 'vitest';
import { changePayloadSchema, parseChangePayload } from '../../../sql-triggers/payload.ts';

describe('parseChangePayload', () => {
  it('accepts every payload kind the triggers send', () => {
    const texts = [
      '{"v":1,"t":"public.users","op":"I","xid":"12","ts":1712345678901.123,"c":["user_id"],"k":[[1],[2]]}',
      '{"v":1,"t":"public.users","op":"U","xid":"12","ts":1.5,"c":["user_id","city_id"],"k":[[1,"9007199254740993"]],"ok":[[2,null]]}',
      '{"v":1,"t":"public.users","op":"D","xid":"12","ts":1,"c":["user_id"],"k":[]}',
      '{"v":1,"t":"public.users","op":"T","xid":"12","ts":1}',
      '{"v":1,"t":"public.users","op":"X","xid":"12","ts":1,"reason":"too_large"}',
    ];
    for (const text of texts) {
      const parsed = parseChangePayload(text);
      expect(parsed).toEqual({ ok: true, payload: JSON.parse(text) });
    }
  });

  it('refuses other versions, unknown ops and tuples that do not fit the key columns, naming the problem', () => {
    const v2 = parseChangePayload('{"v":2,"t":"public.users","op":"T","xid":"1","ts":1}');
    expect(v2.ok).toBe(false);
    expect(!v2.ok && v2.error).toMatch(/^not a tablecache change payload v1 \(v: /);
    const op = parseChangePayload('{"v":1,"t":"public.users","op":"Z","xid":"1","ts":1}');
    expect(!op.ok && op.error).toMatch(/op/);
    const arity = parseChangePayload('{"v":1,"t":"public.users","op":"I","xid":"1","ts":1,"c":["a","b"],"k":[[1]]}');
    expect(!arity.ok && arity.error).toMatch(/k\.0: expected 2 value\(s\), one per key column in c/);
  });

  it('reports text that is not JSON without throwing', () => {
    const parsed = parseChangePayload('barrier-42');
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(/^not JSON .*barrier-42$/);
  });

  it('gives the verdict and value of the schema for row-change payloads it checks without it', () => {
    const head = '"v":1,"t":"public.users","xid":"7","ts":1.5';
    const texts = [
      `{${head},"op":"U","c":["a","b"],"k":[[1,"x"],[true,null]],"ok":[[2,"y"]],"extra":1}`,
      `{${head},"op":"I","c":["a"],"k":[]}`,
      `{${head},"op":"D","c":["a"],"k":[[1.25]]}`,
      `{${head},"op":"U","c":["a"],"k":[[1]],"ok":null}`,
      `{${head},"op":"U","c":["a"],"k":[[[1,2]]]}`,
      `{${head},"op":"U","c":["a"],"k":[[{"n":1}]]}`,
      `{${head},"op":"U","c":[],"k":[]}`,
      `{${head},"op":"U","c":["a",1],"k":[]}`,
      `{${head},"op":"U","c":["a"],"k":[[]]}`,
      `{${head},"op":"U","c":["a"],"k":[1]}`,
      `{${head},"op":"U","c":["a"],"k":{"0":[1]}}`,
      '{"v":1,"t":"","xid":"7","ts":1,"op":"I","c":["a"],"k":[]}',
      '{"v":1,"t":"public.users","xid":"7a","ts":1,"op":"I","c":["a"],"k":[]}',
      '{"v":1,"t":"public.users","xid":7,"ts":1,"op":"I","c":["a"],"k":[]}',
      '{"v":1,"t":"public.users","xid":"7","ts":"1","op":"I","c":["a"],"k":[]}',
      '{"v":"1","t":"public.users","xid":"7","ts":1,"op":"I","c":["a"],"k":[]}',
      '[1]',
    ];
    for (const text of texts) {
      const parsed = parseChangePayload(text);
      const schema = changePayloadSchema.safeParse(JSON.parse(text));
      expect(parsed.ok, text).toBe(schema.success);
      if (parsed.ok) expect(parsed.payload, text).toEqual(schema.data);
    }
  });
});
