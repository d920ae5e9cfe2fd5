import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader } from '../../../lib/client/index.ts';
import { Interval } from '../../../lib/core/interval.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import type { RecordScorer } from '../../../lib/core/storageTable.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { RedisStorageTable } from '../../../lib/redis/redisStorageTable.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { mergeHalfWayAndDie } from './halfAppliedMerge.ts';

interface Row {
  id: number;
  group: number;
}

const scorer: RecordScorer<Row, number> = {
  indexNames: ['primary_key', 'group'],
  score: (indexName, row) => (indexName === 'primary_key' ? row.id : row.group),
  primaryKey: (row) => row.id,
};

const prefix = uniqueRedisPrefix('acl');
const user = `tc_reader_${randomBytes(4).toString('hex')}`;
const password = randomBytes(12).toString('hex');
let admin: Redis;

/** The permissions docs/redis-key-layout.md tells operators to give readers, and nothing more. */
const READER_ACL = [
  'on',
  `>${password}`,
  'resetkeys',
  `%R~{${prefix}*`,
  'resetchannels',
  '-@all',
  '+fcall_ro',
  '+evalsha_ro',
  '+eval_ro',
  '+hget',
  '+hmget',
  '+hexists',
  '+hlen',
  '+sismember',
  '+zrangebyscore',
  '+get',
  '+pttl',
];

function readerUrl(): string {
  const url = new URL(testRedisUrl());
  url.username = user;
  url.password = password;
  return url.toString();
}

beforeAll(async () => {
  admin = new Redis(testRedisUrl(), { lazyConnect: true });
  await admin.connect();
  await admin.call('ACL', 'SETUSER', user, ...READER_ACL);
});

afterAll(async () => {
  await admin.call('ACL', 'DELUSER', user);
  await deleteKeysWithPrefix(admin, prefix);
  await admin.quit();
});

describe('a reader whose Redis user may only read the table', () => {
  it('reads everything, including a merge in progress, and cannot write', async () => {
    const writerConnection = new Redis(testRedisUrl(), { lazyConnect: true });
    await writerConnection.connect();
    const writer = await RedisStorageTable.open<Row>({ redis: writerConnection, table: 'rows', keyPrefix: prefix, scorer, mergeBatchSize: 2, leaseTtlMs: 300 });
    await writer.putRecords([1, 2, 3, 4].map((id) => ({ id, group: id % 2 })));
    await writer.markLoaded({ coverage: { primary_key: [Interval.everything()], group: [Interval.everything()] } });

    await using reader = await openReader<Row>({ url: readerUrl(), table: 'rows', keyPrefix: prefix });
    expect(await reader.get(1)).toEqual({ id: 1, group: 1 });
    expect(await reader.getMany([2, 9])).toEqual([{ id: 2, group: 0 }, undefined]);
    expect((await reader.range('group', 0, 1)).map((row) => row.id)).toEqual([2, 4]);
    expect(await reader.range('primary_key', 0, 10, { requireCovered: true })).toHaveLength(4);
    expect(await reader.covers('group', 0, 5)).toBe(true);
    expect(await reader.info()).toMatchObject({ loaded: true, recordCount: 4 });
    await expect(reader.range('nope', 0, 1)).rejects.toMatchObject({ code: 'TC_INVALID_ARGUMENT' });

    // The overlay path of a half-applied merge uses more commands; they must be allowed too.
    for await (const row of writer.scratchDiscardRecords(new StorageRecordsSpec<Row>('primary_key', [new Interval(1, 3)]))) void row;
    await writer.scratchPutRecords([{ id: 2, group: 5 }, { id: 7, group: 1 }]);
    await mergeHalfWayAndDie(writerConnection, writer as RedisStorageTable<unknown>);
    expect(await admin.hget(new TableKeys('rows', prefix).meta, 'overlay')).not.toBeNull();
    expect(await reader.getMany([1, 2, 7])).toEqual([undefined, { id: 2, group: 5 }, { id: 7, group: 1 }]);
    expect((await reader.range('group', 0, 10)).map((row) => row.id)).toEqual([4, 3, 7, 2]);
    expect(await reader.info()).toMatchObject({ recordCount: 4 });

    const raw = new Redis(readerUrl(), { lazyConnect: true, enableReadyCheck: false });
    await raw.connect();
    try {
      await expect(raw.hset(new TableKeys('rows', prefix).meta, 'gen', '0')).rejects.toThrow(/NOPERM/);
      await expect(raw.get('some-other-key')).rejects.toThrow(/NOPERM/);
    } finally {
      raw.disconnect();
      await writer.close();
    }
  });

  it('falls back to scripts (EVALSHA_RO) when its user may not call functions', async () => {
    const scriptsOnly = `${user}_scripts`;
    await admin.call('ACL', 'SETUSER', scriptsOnly, ...READER_ACL.filter((rule) => rule !== '+fcall_ro'));
    const writer = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table: 'scripted', keyPrefix: prefix, scorer });
    try {
      await writer.putRecords([{ id: 1, group: 1 }]);
      await writer.markLoaded({ coverage: null });
      const url = new URL(testRedisUrl());
      url.username = scriptsOnly;
      url.password = password;
      await using reader = await openReader<Row>({ url: url.toString(), table: 'scripted', keyPrefix: prefix });
      expect(await reader.get(1)).toEqual({ id: 1, group: 1 });
      expect(await reader.range('group', 0, 5)).toEqual([{ id: 1, group: 1 }]);
    } finally {
      await writer.close();
      await admin.call('ACL', 'DELUSER', scriptsOnly);
    }
  });

  it('with a near-cache, subscribes to the change channel when granted it, and fails clearly when not', async () => {
    const writer = await RedisStorageTable.open<Row>({ url: testRedisUrl(), table: 'near', keyPrefix: prefix, scorer });
    const subscriber = `${user}_near`;
    const url = new URL(testRedisUrl());
    url.username = subscriber;
    url.password = password;
    try {
      await writer.putRecords([{ id: 1, group: 1 }]);
      await writer.markLoaded({ coverage: null });
      await admin.call('ACL', 'SETUSER', subscriber, ...READER_ACL);
      await expect(openReader<Row>({ url: url.toString(), table: 'near', keyPrefix: prefix, nearCache: { maxRecords: 10 } })).rejects.toThrow(
        /NOPERM/,
      );
      // What docs/redis-key-layout.md adds for a near-cache.
      await admin.call('ACL', 'SETUSER', subscriber, ...READER_ACL, `&{${prefix}*`, '+subscribe');
      await using reader = await openReader<Row>({ url: url.toString(), table: 'near', keyPrefix: prefix, nearCache: { maxRecords: 10 } });
      await waitFor('the near-cache to subscribe', () => reader.nearCacheStats()!.active);
      expect(await reader.get(1)).toEqual({ id: 1, group: 1 });
      expect(await reader.get(1)).toEqual({ id: 1, group: 1 });
      expect(reader.nearCacheStats()).toMatchObject({ hits: 1 });
    } finally {
      await writer.close();
      await admin.call('ACL', 'DELUSER', subscriber);
    }
  });

  it('gets a clear error, not a hang, when its user may not run the reader scripts or the commands in them', async () => {
    const limited = `${user}_limited`;
    const url = new URL(testRedisUrl());
    url.username = limited;
    url.password = password;
    try {
      await admin.call('ACL', 'SETUSER', limited, 'on', `>${password}`, `%R~{${prefix}*`, '-@all', '+hget');
      await expect(openReader({ url: url.toString(), table: 'rows', keyPrefix: prefix })).rejects.toThrow(/NOPERM.*evalsha_ro/);
      await admin.call('ACL', 'SETUSER', limited, '+fcall_ro');
      await expect(openReader({ url: url.toString(), table: 'rows', keyPrefix: prefix })).rejects.toThrow(/can't run this command/);
    } finally {
      await admin.call('ACL', 'DELUSER', limited);
    }
  });
});
