import { describe, expect, it } from 'vitest';
import { Interval } from '../../../lib/core/interval.ts';
import { TableKeys, keyGroupSuffixes } from '../../../lib/redis/keyLayout.ts';
import { infoReply, rangeArgs, rangeReply, readerReplyError } from '../../../lib/redis/scripts/readerScripts.ts';

const context = { keys: new TableKeys('users', 'p:'), codecId: 'msgpack' };

describe('the readers side of the Redis protocol', () => {
  it('turns each error reply a reader script raises into a typed error by its code', () => {
    const error = (message: string) => readerReplyError(new Error(message), context);
    expect(error('TC_UNLOADED no generation is published')).toMatchObject({ code: 'TC_NOT_LOADED', message: expect.stringContaining('{p:users}:meta') });
    expect(error('TC_FORMAT 7')).toMatchObject({ code: 'TC_STORAGE_FORMAT', message: expect.stringContaining('format "7"') });
    expect(error('TC_CODEC json')).toMatchObject({ code: 'TC_STORAGE_FORMAT', message: expect.stringContaining('codec "json", but this reader decodes "msgpack"') });
    expect(error('TC_NOINDEX "a \\" b" ["primary_key","city"]')).toMatchObject({
      code: 'TC_INVALID_ARGUMENT',
      message: 'Table "users" has no index "a \\" b"; its indexes are primary_key, city.',
    });
    expect(error('TC_SOMETHING_NEW x')).toMatchObject({ code: 'TC_STORAGE_FORMAT', message: expect.stringContaining('Unexpected reply "TC_SOMETHING_NEW x"') });
  });

  it('builds range arguments from named parameters: coverage wanted or not, fields, non-empty intervals only', () => {
    const intervals = [new Interval(1, 5), new Interval(3, 3), new Interval(-Infinity, Infinity)];
    expect(rangeArgs({ codecId: 'c', indexName: 'i', intervals })).toEqual(['1', 'c', 'i', '', '0', '1', '5', '-inf', 'inf']);
    expect(rangeArgs({ codecId: 'c', indexName: 'i', coverageStep: null, intervals: [] })).toEqual(['1', 'c', 'i', '-', '0']);
    expect(rangeArgs({ codecId: 'c', indexName: 'i', coverageStep: '12', withFields: true, intervals: [] })).toEqual(['1', 'c', 'i', '12', '1']);
  });

  it('names the parts of range and info replies', () => {
    const record = Buffer.from('r');
    expect(rangeReply([Buffer.from('4'), null, record], true)).toEqual({ coverage: { step: '4', json: null }, records: [record] });
    expect(rangeReply([record], false)).toEqual({ coverage: null, records: [record] });
    const info = ['ok', '1', '3', 'msgpack', '["primary_key"]', '9', '1000', '2000', 5, 'host:1:ab', 4200].map((value) =>
      typeof value === 'string' ? Buffer.from(value) : value,
    );
    expect(infoReply(info)).toEqual({
      status: 'ok',
      format: '1',
      generation: 3,
      codec: 'msgpack',
      indexNames: ['primary_key'],
      step: 9,
      refreshedAt: 1000,
      loadedAt: 2000,
      recordCount: 5,
      writerId: 'host:1:ab',
      leaseExpiresInMs: 4200,
    });
    expect(infoReply(['unloaded', null, null, null, null, null, null, null, 0, null, null])).toMatchObject({ status: 'unloaded', generation: null, indexNames: [], step: 0, writerId: null });
  });

  it('lists the key suffixes of a key group in the order TableKeys names its keys', () => {
    const keys = new TableKeys('t', 'p:');
    expect(keyGroupSuffixes('generation', ['a', 'b']).map((suffix) => `${keys.base}g2${suffix}`)).toEqual(keys.generationKeys(2, ['a', 'b']));
    expect(keyGroupSuffixes('staging', ['a']).map((suffix) => `${keys.base}s5${suffix}`)).toEqual(keys.stagingKeys(5, ['a']));
  });
});
