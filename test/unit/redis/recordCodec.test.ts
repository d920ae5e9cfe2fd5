import { describe, expect, it } from 'vitest';
import { MessagePackRecordCodec, type ColumnCodec } from '../../../lib/redis/recordCodec.ts';

describe('MessagePackRecordCodec', () => {
  const codec = new MessagePackRecordCodec();

  it('round-trips every value type pg returns', () => {
    const row = {
      nothing: null,
      yes: true,
      integer: -7,
      large: 2 ** 40,
      fraction: 0.1,
      int8: 9_007_199_254_740_993n,
      small8: 5n,
      beyond64: -(2n ** 70n),
      numeric: '123.4500',
      text: 'naïve 🚀',
      when: new Date('2024-02-29T12:34:56.789Z'),
      bytes: Buffer.from([0, 255]),
      array: [1, 'a', null, [2]],
      json: { a: { b: [true, { c: 'd' }] }, e: [] },
      infinite: -Infinity,
    };
    const decoded = codec.decode(codec.encode(row));
    expect(decoded).toStrictEqual(row);
    expect(Buffer.isBuffer(decoded.bytes)).toBe(true);
  });

  it('gives decoded Buffers their own memory, not a view of the bytes they came in', () => {
    const encoded = codec.encode({ bytes: Buffer.from([1, 2, 3]) });
    const decoded = codec.decode(encoded) as { bytes: Buffer };
    encoded.fill(0);
    expect([...decoded.bytes]).toEqual([1, 2, 3]);
  });

  it('is named msgpack-1, and names its column codecs in its id', () => {
    expect(codec.id).toBe('msgpack-1');
    const cents: ColumnCodec = { name: 'cents', encode: (v) => Math.round(Number(v) * 100), decode: (v) => (Number(v) / 100).toFixed(2) };
    const upper: ColumnCodec = { name: 'upper', encode: (v) => String(v).toUpperCase(), decode: (v) => String(v).toLowerCase() };
    const withColumns = new MessagePackRecordCodec({ columns: { price: cents, code: upper } });
    expect(withColumns.id).toBe('msgpack-1+code=upper,price=cents');
    const encoded = withColumns.encode({ price: '12.30', code: 'ab', other: 1 });
    expect(codec.decode(encoded)).toEqual({ price: 1230, code: 'AB', other: 1 });
    expect(withColumns.decode(encoded)).toEqual({ price: '12.30', code: 'ab', other: 1 });
  });

  it('refuses to encode something that is not a record', () => {
    expect(() => codec.encode(null as unknown as Record<string, unknown>)).toThrow(/must be an object of columns, got null/);
    expect(() => codec.encode([1] as unknown as Record<string, unknown>)).toThrow(/got an array/);
  });

  it('refuses bytes that are not a map of columns', () => {
    expect(() => codec.decode(Buffer.from([0xc1]))).toThrow(/expected a MessagePack map of columns/);
    expect(() => codec.decode(codec.encode({ a: 1 }).subarray(0, 2))).toThrow();
    expect(() => codec.decode(Buffer.from([0x93, 1, 2, 3]))).toThrow(/got Array/);
  });
});
