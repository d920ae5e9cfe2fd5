import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { ConnectionFailedError, PostgresAccess, QueryFailedError } from '../../../lib/postgres/index.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';
import { waitFor } from '../../support/waitFor.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('postgres_access');
  await db.pool.query(`
    CREATE FUNCTION produced(g integer) RETURNS integer LANGUAGE plpgsql AS $$
    BEGIN
      RAISE NOTICE 'produced %', g;
      RETURN g;
    END $$;
    CREATE TABLE numbers (id integer PRIMARY KEY, value integer NOT NULL);
    INSERT INTO numbers SELECT g, g FROM generate_series(1, 100) g;
  `);
});

afterAll(async () => {
  await db.drop();
});

async function collect<T>(records: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const record of records) all.push(record);
  return all;
}

function spec(query: string, args: unknown[] = []): QueryArgsDbRecordsSpec {
  return new QueryArgsDbRecordsSpec(query, args);
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('PostgresAccess streaming', () => {
  test('streams 50,000 rows a batch of 1,000 at a time, at most one batch ahead, holding its connection while the consumer pauses', async () => {
    // Every row the server produces raises a notice, so the notice count is
    // the number of rows fetched so far, whatever the client does with them.
    let produced = 0;
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pool.on('connect', (client) => client.on('notice', () => produced++));
    await using access = new PostgresAccess({ pool, batchSize: 1000 });
    const records = access.getRecords(
      new QueryArgsDbRecordsSpec('SELECT produced(g) AS g FROM generate_series(1, 50000) g', [], (row) => ({
        n: row.g as number,
      })),
    );
    try {
      const first = await records.next();
      expect(first.value).toEqual({ n: 1 });
      expect(pool.totalCount).toBe(1);
      expect(pool.idleCount).toBe(0);
      // The second batch is fetched while the first is consumed, and no more.
      await waitFor('the batch after the first to be fetched', () => produced === 2000);
      for (let i = 2; i <= 1000; i++) expect((await records.next()).value).toEqual({ n: i });
      expect(produced).toBe(2000);
      expect((await records.next()).value).toEqual({ n: 1001 });
      await waitFor('the third batch to be fetched', () => produced === 3000);
      for (let i = 1002; i <= 2000; i++) expect((await records.next()).value).toEqual({ n: i });
      expect(produced).toBe(3000);

      let expected = 2001;
      for await (const record of records) {
        expect(record.n).toBe(expected);
        expected++;
      }
      expect(expected).toBe(50001);
      expect(produced).toBe(50000);
      expect(pool.idleCount).toBe(pool.totalCount);
    } finally {
      await records.return();
      await pool.end();
    }
  });

  test('yields plain row objects when the spec has no record parser', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    const rows = await collect(access.getRecords(spec('SELECT id, value FROM numbers WHERE id = ANY($1) ORDER BY id', [[3, 4]])));
    expect(rows).toEqual([
      { id: 3, value: 3 },
      { id: 4, value: 4 },
    ]);
    expect(Object.getPrototypeOf(rows[0])).toBe(Object.prototype);
  });

  test('returns its connection to the pool, out of the transaction, when the consumer breaks early', async () => {
    await using access = new PostgresAccess({ connectionString: db.url, batchSize: 100 });
    let seen = 0;
    for await (const _ of access.getRecords(spec('SELECT g FROM generate_series(1, 10000) g'))) {
      if (++seen === 5) break;
    }
    expect(seen).toBe(5);
    expect(access.pool.totalCount).toBe(1);
    expect(access.pool.idleCount).toBe(1);

    const client = await access.pool.connect();
    try {
      expect(client.getTransactionStatus()).toBe('I');
      const { rows } = await client.query(`SELECT current_setting('transaction_isolation') AS isolation`);
      expect(rows[0].isolation).toBe('read committed');
    } finally {
      client.release();
    }
  });

  test('reads every batch from one REPEATABLE READ READ ONLY snapshot', async () => {
    await using access = new PostgresAccess({ connectionString: db.url, batchSize: 10 });
    const [settings] = await collect(
      access.getRecords(
        spec(`SELECT current_setting('transaction_isolation') AS isolation, current_setting('transaction_read_only') AS read_only`),
      ),
    );
    expect(settings).toEqual({ isolation: 'repeatable read', read_only: 'on' });

    const records = access.getRecords(spec('SELECT id, value FROM numbers ORDER BY id'));
    const values: number[] = [];
    const first = await records.next();
    values.push((first.value as { value: number }).value);
    await db.pool.query('UPDATE numbers SET value = value + 1000');
    try {
      for await (const row of records) values.push((row as { value: number }).value);
    } finally {
      await db.pool.query('UPDATE numbers SET value = value - 1000');
    }
    expect(values).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  test('rejects a batchSize that is not a positive integer, naming it', () => {
    expect(() => new PostgresAccess({ connectionString: db.url, batchSize: 0 })).toThrow(
      expect.objectContaining({ code: 'TC_INVALID_ARGUMENT', message: expect.stringContaining('got 0') }),
    );
    expect(() => new PostgresAccess({ connectionString: db.url, batchSize: 2.5 })).toThrow(/got 2\.5/);
  });
});

describe('PostgresAccess type mapping', () => {
  test('reads int8 beyond 2^53 exactly as bigint and finds rows by bigint arguments', async () => {
    await db.pool.query(`
      CREATE TABLE big_ids (id int8 PRIMARY KEY);
      INSERT INTO big_ids VALUES (9007199254740993), (9223372036854775807), (-9223372036854775808), (1);
    `);
    await using access = new PostgresAccess({ connectionString: db.url });
    const rows = await collect(access.getRecords(spec('SELECT id, ARRAY[id, NULL] AS ids FROM big_ids ORDER BY id')));
    expect(rows).toEqual([
      { id: -9223372036854775808n, ids: [-9223372036854775808n, null] },
      { id: 1n, ids: [1n, null] },
      { id: 9007199254740993n, ids: [9007199254740993n, null] },
      { id: 9223372036854775807n, ids: [9223372036854775807n, null] },
    ]);
    const found = await collect(access.getRecords(spec('SELECT id FROM big_ids WHERE id = ANY($1::int8[])', [[9007199254740993n]])));
    expect(found).toEqual([{ id: 9007199254740993n }]);
  });

  test('reads numeric and numeric[] as their exact decimal text', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    const [row] = await collect(
      access.getRecords(
        spec(`SELECT 12345678901234567890.123456789::numeric AS n, 0.10::numeric AS tenth,
                     ARRAY[0.1, 1e-30, 99999999999999999999.5]::numeric[] AS ns`),
      ),
    );
    expect(row).toEqual({ n: '12345678901234567890.123456789', tenth: '0.10', ns: ['0.1', '0.000000000000000000000000000001', '99999999999999999999.5'] });
  });

  test('keeps pg defaults for the other types', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    const [row] = await collect(
      access.getRecords(
        spec(`SELECT '2024-05-06T07:08:09.123Z'::timestamptz AS at, '\\x0102'::bytea AS bytes,
                     '{"a": [1, "b"]}'::jsonb AS doc, ARRAY[1, 2]::int4[] AS ints, 1.5::float8 AS f, true AS yes`),
      ),
    );
    expect(row).toEqual({
      at: new Date('2024-05-06T07:08:09.123Z'),
      bytes: Buffer.from([1, 2]),
      doc: { a: [1, 'b'] },
      ints: [1, 2],
      f: 1.5,
      yes: true,
    });
  });

  test('leaves the process-global pg.types untouched', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    await collect(access.getRecords(spec('SELECT 1::int8 AS n')));
    expect(pg.types.getTypeParser(20, 'text')('9007199254740993')).toBe('9007199254740993');
    const { rows } = await db.pool.query('SELECT 9007199254740993::int8 AS n, ARRAY[0.1]::numeric[] AS ns');
    expect(rows[0]).toEqual({ n: '9007199254740993', ns: [0.1] });
  });
});

describe('PostgresAccess errors', () => {
  test('fails bad SQL with TC_QUERY_FAILED naming the query and carrying the server fields', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    const query = 'SELECT id FROM no_such_table WHERE id = $1';
    const error = await collect(access.getRecords(spec(query, [1]))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    const failed = error as QueryFailedError;
    expect(failed.code).toBe('TC_QUERY_FAILED');
    expect(failed.message).toContain(query);
    expect(failed.message).toContain('relation "no_such_table" does not exist');
    expect(failed.sqlState).toBe('42P01');
    expect(failed.position).toBe(16);
    expect(failed.query).toBe(query);
    expect(failed.cause).toBeInstanceOf(pg.DatabaseError);
    expect(access.pool.idleCount).toBe(access.pool.totalCount);
  });

  test('cuts a long query to its first 200 characters in the message', async () => {
    await using access = new PostgresAccess({ connectionString: db.url });
    const query = `SELECT ${Array.from({ length: 100 }, (_, i) => `${i} AS c${i}`).join(', ')} FROM nowhere`;
    const error = (await collect(access.getRecords(spec(query))).catch((e: unknown) => e)) as QueryFailedError;
    expect(error.message).toContain(`${query.slice(0, 200)}…`);
    expect(error.message).not.toContain('FROM nowhere');
  });

  test('fails mid-stream with TC_QUERY_FAILED after the rows before the error, and the connection stays usable', async () => {
    await using access = new PostgresAccess({ connectionString: db.url, batchSize: 1000, max: 1 });
    const received: number[] = [];
    const error = await (async () => {
      for await (const row of access.getRecords(spec('SELECT 1 / (1500 - g) AS q, g FROM generate_series(1, 3000) g'))) {
        received.push((row as { g: number }).g);
      }
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TC_QUERY_FAILED', sqlState: '22012' });
    expect(received).toHaveLength(1000);
    expect(await collect(access.getRecords(spec('SELECT 1 AS one')))).toEqual([{ one: 1 }]);
  });

  test('passes an exception from the record parser through unchanged and returns the connection', async () => {
    await using access = new PostgresAccess({ connectionString: db.url, batchSize: 10 });
    const parserError = new Error('user 7 is malformed');
    const parsing = new QueryArgsDbRecordsSpec('SELECT g FROM generate_series(1, 100) g', [], (row) => {
      if (row.g === 7) throw parserError;
      return row;
    });
    await expect(collect(access.getRecords(parsing))).rejects.toBe(parserError);
    expect(access.pool.totalCount).toBe(1);
    expect(access.pool.idleCount).toBe(1);
    expect(await collect(access.getRecords(spec('SELECT 1 AS one')))).toEqual([{ one: 1 }]);
  });

  test('discards a connection whose server process was terminated mid-read, and reads on with a new one', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    let ended = 0;
    pool.on('connect', (client) => client.on('end', () => ended++));
    await using access = new PostgresAccess({ pool, batchSize: 10 });
    try {
      const records = access.getRecords(spec('SELECT pg_backend_pid() AS pid, g FROM generate_series(1, 1000) g'));
      const first = (await records.next()).value as { pid: number };
      await db.pool.query('SELECT pg_terminate_backend($1)', [first.pid]);
      await waitFor('the terminated connection to end', () => ended === 1);

      const error = await (async () => {
        for await (const _ of records);
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionFailedError);
      const server = new URL(db.url);
      expect(error).toMatchObject({ code: 'TC_CONNECTION_FAILED', host: server.hostname, port: Number(server.port) });
      expect((error as ConnectionFailedError).message).toContain('terminating connection due to administrator command');
      expect((error as ConnectionFailedError).message).toContain('SELECT pg_backend_pid()');
      expect(pool.totalCount).toBe(0);
      expect(await collect(access.getRecords(spec('SELECT 2 AS two')))).toEqual([{ two: 2 }]);
    } finally {
      await pool.end();
    }
  });

  test('reports an unreachable port as TC_CONNECTION_FAILED naming host:port and never the password', async () => {
    const port = await closedPort();
    await using access = new PostgresAccess({ connectionString: `postgres://postgres:hunter2-secret@127.0.0.1:${port}/postgres` });
    const error = await collect(access.getRecords(spec('SELECT 1'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionFailedError);
    const failed = error as ConnectionFailedError;
    expect(failed.code).toBe('TC_CONNECTION_FAILED');
    expect(failed.message).toContain(`127.0.0.1:${port}`);
    expect(failed.message).toContain('ECONNREFUSED');
    expect(failed.message).not.toContain('hunter2-secret');
    expect({ host: failed.host, port: failed.port }).toEqual({ host: '127.0.0.1', port });
  });
});

describe('PostgresAccess lifecycle', () => {
  test('does not end a caller-supplied pool on close', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const access = new PostgresAccess({ pool });
      await collect(access.getRecords(spec('SELECT 1')));
      await access.close();
      expect(pool.ended).toBe(false);
      expect((await pool.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    } finally {
      await pool.end();
    }
  });

  test('ends the pool it created on close, and refuses reads afterwards with TC_CLOSED', async () => {
    const access = new PostgresAccess({ connectionString: db.url });
    await collect(access.getRecords(spec('SELECT 1')));
    await access[Symbol.asyncDispose]();
    expect(access.pool.ended).toBe(true);
    await access.close();
    await expect(collect(access.getRecords(spec('SELECT 1')))).rejects.toMatchObject({ code: 'TC_CLOSED' });
  });
});
