import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReader, type TableReader } from '../../../lib/client/index.ts';
import { TableKeys } from '../../../lib/redis/keyLayout.ts';
import { verifyCache } from '../../../daemon/verifyCache.ts';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';
import type { TablecacheConfig } from '../../../daemon/config/configSchema.ts';
import { quoteIdentifier } from '../../../sql-triggers/identifiers.ts';
import { readTriggerStatus } from '../../../sql-triggers/triggerStatus.ts';
import { triggerSpecFromConfig } from '../../../daemon/config/triggerSpecFromConfig.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';
import { waitFor } from '../../support/waitFor.ts';
import { DaemonProcess, installConfigTriggers } from '../daemon/daemonHarness.ts';

type Row = Record<string, unknown>;

// Names with every character that could end an identifier or a statement, a dot, spaces and unicode.
const SCHEMA = `we;ird"sch 'ü`;
const ITEMS = `tab'le. "x"; --`;
const GROUPS = `gr"oups; DROP`;
const KEY = `ünï "cødé"; id`;
const GROUP = `gr;p "x".y`;
const VALUE = `va'l;ue`;
const LABEL = `lab"el`;
const CHANNEL = 'tc_hostile_names';
// The cached table's name: what the configuration accepts (see the last test).
const TABLE = 'hostile-names_1';
// A prefix with quotes, a semicolon, unicode and the layout's own separator ":" (glob characters stay out:
// the cleanup SCANs by it).
const KEY_PREFIX = `${uniqueRedisPrefix('hostile')}"q';ü:`;

/** Primary keys that each try to break something: the 2 KB key, SQL, JSON and Lua quoting, lines, the hash tag, control characters. */
const HOSTILE_KEYS = [
  'k'.repeat(2048),
  `it's "quoted"; DROP TABLE x; --`,
  'line 1\nline 2\r\n\ttabbed',
  'ünï cødé ✓ 𝄞 😀',
  '}:g1:r {other}:meta',
  '\u0001\u0002\u001f\u007f\u00ff binary-looking',
  '\\"},"op":"T","t":"x"}',
  ' ',
];

const q = quoteIdentifier;
const items = `${q(SCHEMA)}.${q(ITEMS)}`;
const groups = `${q(SCHEMA)}.${q(GROUPS)}`;

let db: TestDatabase;
let admin: Redis;
let reader: TableReader<Row>;
let config: TablecacheConfig;
let directory: string;
let daemon: DaemonProcess;

/** The configuration as a file holds it: names in SQL identifier syntax, so the hostile ones are "quoted". */
function rawConfig(): Record<string, unknown> {
  return {
    postgres: { url: db.url },
    redis: { url: testRedisUrl(), keyPrefix: KEY_PREFIX },
    triggers: { channel: CHANNEL },
    daemon: { batchWindowMs: 1, http: { port: 0 } },
    tables: {
      [TABLE]: {
        query: `SELECT i.${q(KEY)}, i.${q(GROUP)}, i.${q(VALUE)}, g.${q(LABEL)} FROM ${items} i JOIN ${groups} g USING (${q(GROUP)})`,
        primaryKey: q(KEY),
        sources: {
          [`${q(SCHEMA)}.${q(ITEMS)}`]: { key: q(KEY) },
          [`${q(SCHEMA)}.${q(GROUPS)}`]: { key: q(GROUP), match: q(GROUP) },
        },
      },
    },
  };
}

/** The part of a key Redis Cluster hashes to find its slot. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

function expectedRow(key: string, group: number, value: string, label: string): Row {
  return { [KEY]: key, [GROUP]: group, [VALUE]: value, [LABEL]: label };
}

async function expectClean(): Promise<void> {
  const [result] = await verifyCache(config);
  expect(result, JSON.stringify(result?.differences)).toMatchObject({ equal: true, postgresRecords: result!.redisRecords });
}

beforeAll(async () => {
  db = await createTestDatabase('hostile_names');
  await db.pool.query(`
    CREATE SCHEMA ${q(SCHEMA)};
    CREATE TABLE ${groups} (${q(GROUP)} integer PRIMARY KEY, ${q(LABEL)} text NOT NULL);
    CREATE TABLE ${items} (${q(KEY)} text PRIMARY KEY, ${q(GROUP)} integer NOT NULL REFERENCES ${groups}, ${q(VALUE)} text);
    INSERT INTO ${groups} VALUES (1, 'one; "1"'), (2, 'two ''2''');
  `);
  await db.pool.query(`INSERT INTO ${items} SELECT key, 1 + ordinality::integer % 2, key || ' value' FROM unnest($1::text[]) WITH ORDINALITY AS key`, [HOSTILE_KEYS]);
  directory = mkdtempSync(path.join(tmpdir(), 'tc-hostile-'));
  const file = path.join(directory, 'tablecache.json');
  writeFileSync(file, JSON.stringify(rawConfig(), null, 2));
  config = parseConfig(rawConfig(), { file });
  await installConfigTriggers(db.pool, config);
  admin = new Redis(testRedisUrl(), { lazyConnect: true });
  await admin.connect();
  daemon = DaemonProcess.start(file);
  await daemon.waitForLog('table loaded', 1, 15_000);
  reader = await openReader<Row>({ redis: admin, table: TABLE, keyPrefix: KEY_PREFIX });
}, 30_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await reader?.close();
  if (admin) {
    await deleteKeysWithPrefix(admin, KEY_PREFIX);
    admin.disconnect();
  }
  if (directory) rmSync(directory, { recursive: true, force: true });
  await db?.drop();
});

describe('hostile identifiers and values, from the triggers through the daemon and Redis to the reader', () => {
  it('parses the quoted names exactly and keeps every key of the table under its one hash tag', async () => {
    expect(config.tables[0]!.sources.map(({ schema, table, key }) => ({ schema, table, key }))).toEqual([
      { schema: SCHEMA, table: ITEMS, key: [KEY] },
      { schema: SCHEMA, table: GROUPS, key: [GROUP] },
    ]);
    const keys = new TableKeys(TABLE, KEY_PREFIX);
    const stored: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await admin.scan(cursor, 'MATCH', `{${KEY_PREFIX}*`, 'COUNT', 1000);
      stored.push(...found);
      cursor = next;
    } while (cursor !== '0');
    expect(stored.length).toBeGreaterThan(2);
    // Redis Cluster hashes only what is between the first "{" and the first "}" after it: every key of
    // the table has the same hash tag, whatever its primary keys and index names hold, so one slot.
    expect(new Set(stored.map(hashTag))).toEqual(new Set([`${KEY_PREFIX}${TABLE}`]));
    for (const key of stored) expect(key.startsWith(keys.base)).toBe(true);
  });

  it('installs the triggers on the hostile tables, and triggers status finds them current', async () => {
    const client = await db.pool.connect();
    try {
      const status = await readTriggerStatus(client, triggerSpecFromConfig(config));
      expect(status.allCurrent).toBe(true);
      expect(status.sources.map((source) => source.source).sort()).toEqual(config.tables[0]!.sources.map((source) => source.name).sort());
    } finally {
      client.release();
    }
  });

  it('loads every hostile key with its values, and reads them by key and by the lookup on the hostile column', async () => {
    const rows = await reader.getMany(HOSTILE_KEYS);
    expect(rows).toEqual(HOSTILE_KEYS.map((key, index) => expectedRow(key, 1 + ((index + 1) % 2), `${key} value`, (index + 1) % 2 === 0 ? 'one; "1"' : 'two \'2\'')));
    const inGroupTwo = await reader.range(GROUP, 2, 3);
    expect(inGroupTwo.map((row) => row[KEY]).sort()).toEqual(HOSTILE_KEYS.filter((_, index) => (index + 1) % 2 === 1).sort());
    await expectClean();
  });

  it('follows updates, inserts and deletes of hostile keys, and a change to the joined table, and verify finds no difference', async () => {
    const [long, quoted, lines, unicode] = HOSTILE_KEYS as [string, string, string, string];
    const added = `new ${'é'.repeat(1000)}; "}" ${'\n'}`;
    await db.pool.query(`UPDATE ${items} SET ${q(VALUE)} = $2 WHERE ${q(KEY)} = ANY($1)`, [[long, quoted, unicode], `changed ';" \n ü`]);
    await db.pool.query(`DELETE FROM ${items} WHERE ${q(KEY)} = $1`, [lines]);
    await db.pool.query(`INSERT INTO ${items} VALUES ($1, 2, 'added')`, [added]);
    await db.pool.query(`UPDATE ${groups} SET ${q(LABEL)} = 'renamed "1"; --' WHERE ${q(GROUP)} = 1`);
    await waitFor('the changes in Redis', async () => {
      const [longRow, linesRow, addedRow, quotedRow] = await reader.getMany([long, lines, added, quoted]);
      return longRow?.[VALUE] === `changed ';" \n ü` && linesRow === undefined && addedRow?.[VALUE] === 'added' && quotedRow?.[LABEL] === 'renamed "1"; --';
    }, { timeoutMs: 10_000 });
    expect(await reader.get(unicode)).toEqual(expectedRow(unicode, 1, `changed ';" \n ü`, 'renamed "1"; --'));
    await expectClean();
    expect(daemon.logs.filter((line) => Number(line['level']) >= 40)).toEqual([]);
  });

  it('refuses, naming the character, a cached table name or key prefix the Redis key layout cannot hold', () => {
    const base = rawConfig();
    const withTable = (name: string) => ({ ...base, tables: { [name]: Object.values(base['tables'] as object)[0] } });
    expect(() => parseConfig(withTable('users}x'), { file: 'hostile.json' })).toThrow(/cached table name "users}x" is not allowed: it contains "}"/);
    expect(() => parseConfig(withTable('we"ird;'), { file: 'hostile.json' })).toThrow(/it contains "\\"", ";"/);
    expect(() => parseConfig(withTable('ünï cødé'), { file: 'hostile.json' })).toThrow(/it contains "ü", "ï", " ", "ø", "é"/);
    expect(() => parseConfig({ ...base, redis: { url: testRedisUrl(), keyPrefix: 'app{x}:' } }, { file: 'hostile.json' })).toThrow(
      /redis\.keyPrefix: the key prefix "app\{x\}:" contains "\{", "\}"/,
    );
  });
});
