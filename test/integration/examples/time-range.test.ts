import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DbAccess, DbRecordsSpec } from '../../../lib/core/index.ts';
import { main } from '../../../examples/time-range.ts';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.ts';

const QUERY = 'SELECT * FROM device_data WHERE ts >= $1 AND ts < $2';

/** One heading the example printed, the database queries run until the next heading, and the records printed under it. */
interface Section {
  readonly heading: string;
  readonly queries: string[];
  readonly records: string[];
}

const record = (id: number, data: number, day: number) => `{ data_id: ${id}, data: ${data}, ts: 2023-01-0${day}T00:00:00.000Z }`;
const cached = (id: number, data: number, day: number) => `CachedRecord ${record(id, data, day)}`;

describe('examples/time-range.ts', () => {
  let db: TestDatabase;
  /** Printed lines and, marked with "query", every database query the table ran, in order. */
  const transcript: string[] = [];
  let sections: Section[];

  beforeAll(async () => {
    db = await createTestDatabase('example_time_range');
    const watch = (inner: DbAccess): DbAccess => ({
      getRecords<R>(spec: DbRecordsSpec<R>) {
        expect(spec.query).toBe(QUERY);
        const [ge, lt] = spec.args as Date[];
        transcript.push(`query [${ge!.toISOString()}, ${lt!.toISOString()})`);
        return inner.getRecords(spec);
      },
    });
    await main({ postgresUrl: db.url, print: (line) => transcript.push(line), wrapDbAccess: watch });
    sections = [];
    for (const line of transcript) {
      if (line.startsWith('query ')) sections.at(-1)?.queries.push(line.slice('query '.length));
      else if (line.startsWith('{') || line.startsWith('CachedRecord {')) sections.at(-1)!.records.push(line);
      else sections.push({ heading: line, queries: [], records: [] });
    }
  });

  afterAll(async () => {
    await db?.drop();
  });

  function section(heading: string): Section {
    const found = sections.find((s) => s.heading === heading);
    expect(found, `"${heading}" was printed`).toBeDefined();
    return found!;
  }

  it('loads only the window from noon Jan 1 to noon Jan 3', () => {
    expect(transcript[0]).toBe('query [2023-01-01T12:00:00.000Z, 2023-01-03T12:00:00.000Z)');
  });

  it('serves a range inside the window from the cache without a query', () => {
    expect(section('All records in cache:')).toEqual({ heading: 'All records in cache:', queries: [], records: [cached(2, 2, 2)] });
  });

  it('reads a range reaching outside the window wholly from the database', () => {
    const { queries, records } = section('Not all records in cache (will be loaded from DB):');
    expect(records).toEqual([record(1, 1, 1), record(2, 2, 2), record(3, 3, 3), record(4, 4, 4)]);
    // The read's own query, then the adjustment's load of the new window.
    expect(queries).toEqual(['[2023-01-01T00:00:00.000Z, 2023-01-05T00:00:00.000Z)', '[2023-01-03T00:00:00.000Z, 2023-01-06T00:00:00.000Z)']);
  });

  it('moves the window with adjust: expired records come from the database, new ones from the cache', () => {
    const expired = section('Records we have expired from cache are loaded from the DB:');
    expect(expired.records).toEqual([record(2, 2, 2)]);
    expect(expired.queries).toEqual(['[2023-01-02T00:00:00.000Z, 2023-01-03T00:00:00.000Z)']);
    expect(section('Newer records were added to the cache:')).toMatchObject({ queries: [], records: [cached(4, 4, 4)] });
  });

  it('refreshes a record moved inside the window on the next read, loading by the new spec only', () => {
    const moved = section('Record 4 with updated ts inside of the covered range:');
    expect(moved.records).toEqual([cached(4, 4, 5)]);
    expect(moved.queries).toEqual(['[2023-01-04T23:50:00.000Z, 2023-01-05T00:10:00.000Z)']);
  });

  it('reads a record moved outside the window from the database', () => {
    const outside = section('Record 4 with updated ts outside of the covered range (fetched from DB):');
    expect(outside.records).toEqual([record(4, 4, 7)]);
    // The read itself, then the adjustment's refresh of the left range, then its load of the wider window.
    expect(outside.queries).toEqual([
      '[2023-01-04T00:00:00.000Z, 2023-01-08T00:00:00.000Z)',
      '[2023-01-04T00:00:00.000Z, 2023-01-06T00:00:00.000Z)',
      '[2023-01-03T00:00:00.000Z, 2023-01-08T00:00:00.000Z)',
    ]);
  });

  it('caches the record again after invalidating the range it left and widening the window', () => {
    expect(section('Record 4 with updated ts now inside the covered range after the adjustment:')).toMatchObject({
      queries: [],
      records: [cached(4, 4, 7)],
    });
  });

  it('serves the old record with forceRefreshOnNextRead: false, and the new one after refreshInvalid()', () => {
    expect(section('Record 4 still with the old data with forceRefreshOnNextRead: false:')).toMatchObject({
      queries: [],
      records: [cached(4, 4, 7)],
    });
    expect(section('Record 4 updated after manual refresh:')).toMatchObject({
      queries: ['[2023-01-07T00:00:00.000Z, 2023-01-08T00:00:00.000Z)'],
      records: [cached(4, 5, 7)],
    });
  });

  it('drops its own schema at the end', async () => {
    const schemas = await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tablecache_example_time_range'`);
    expect(schemas.rowCount).toBe(0);
  });
});
