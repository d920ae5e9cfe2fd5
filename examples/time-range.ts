/**
 * The time-range example: an Indexes implementation of your own.
 *
 * A table of timestamped device data, of which only a recent time window is
 * cached. Reads of a time range inside the window are served from the cache;
 * any other range is read from Postgres as a whole. The window moves with
 * adjust(), and records whose timestamp changed are invalidated with their
 * old and their new time.
 *
 * To show where each record comes from, the example's storage keeps records
 * as instances of the class `CachedRecord`, so they print as
 * `CachedRecord { … }`, while rows read from Postgres print as plain objects.
 *
 * Run it with `npx tsx examples/time-range.ts` against a Postgres given by
 * TABLECACHE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 * It works in a schema of its own, `tablecache_example_time_range`, created at
 * the start and dropped at the end.
 */
import { inspect } from 'node:util';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import {
  Adjustment,
  CachedTable,
  IndexSpec,
  Indexes,
  Interval,
  InvalidArgumentError,
  QueryArgsDbRecordsSpec,
  StorageRecordsSpec,
  type Coverage,
  type DbAccess,
  type Score,
} from '../lib/core/index.ts';
import { LocalStorageTable } from '../lib/local/index.ts';
import { PostgresAccess } from '../lib/postgres/index.ts';
import { searchPathOption } from './seedSchema.ts';

const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const SCHEMA = 'tablecache_example_time_range';
const INDEX_NAME = 'time';

/** A row of `device_data`. */
export interface DeviceData {
  data_id: number;
  data: number;
  ts: Date;
}

/**
 * Reads a timestamp argument. ISO 8601 text without a zone (`2023-01-02`,
 * `2023-01-01T12:00:00`) means UTC: JavaScript would read a date alone as
 * UTC but a date with a time as local time, which would make the same
 * argument mean different instants on different machines.
 */
function parseTimestamp(text: string): Date {
  const zoneless = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(text);
  const date = new Date(zoneless ? `${text.includes('T') ? text : `${text}T00:00:00`}Z` : text);
  if (Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError(`Expected an ISO 8601 timestamp such as 2023-01-02T12:00:00, got "${text}".`);
  }
  return date;
}

/** The records with a timestamp in `[ge, lt)`. */
export class TimeRangeSpec extends IndexSpec {
  constructor(
    indexName: string,
    readonly ge: Date,
    readonly lt: Date,
  ) {
    super(indexName);
  }

  override toString(): string {
    return `records with time in [${this.ge.toISOString()}, ${this.lt.toISOString()})`;
  }
}

/** An adjustment to a new time window; carries the window for commitAdjustment. */
export class TimeRangeAdjustment extends Adjustment<DeviceData> {
  constructor(
    expireSpec: StorageRecordsSpec<DeviceData> | null,
    loadSpec: QueryArgsDbRecordsSpec<DeviceData>,
    readonly ge: Date,
    readonly lt: Date,
  ) {
    super(expireSpec, loadSpec);
  }

  override toString(): string {
    return `adjustment expiring ${this.expireSpec ?? 'nothing'} and loading records with time in [${this.ge.toISOString()}, ${this.lt.toISOString()})`;
  }
}

/**
 * Indexes with one index, `time`: a record's score is its timestamp in
 * milliseconds since the epoch, and specs are time ranges `[ge, lt)` given as
 * ISO 8601 text. The cached window is one range; an adjustment expires what
 * falls out of it and loads the whole new window (loading records again that
 * are already cached costs time, not correctness).
 */
export class TimeRangeIndexes extends Indexes<DeviceData, number, TimeRangeSpec, [ge: string, lt: string]> {
  readonly indexNames = [INDEX_NAME] as const;
  private ge = new Date(0);
  private lt = new Date(0);

  /** @param queryRange - selects the records with `$1 <= ts < $2`. */
  constructor(private readonly queryRange: string) {
    super();
  }

  /** @throws {@link InvalidArgumentError} for another index, an unreadable timestamp, or bounds out of order. */
  createSpec(indexName: string, ge: string, lt: string): TimeRangeSpec {
    assertIndexName(indexName);
    const spec = new TimeRangeSpec(indexName, parseTimestamp(ge), parseTimestamp(lt));
    if (spec.ge > spec.lt) throw new InvalidArgumentError(`Time bounds are not in order: ${ge} is after ${lt}.`);
    return spec;
  }

  score(indexName: string, record: DeviceData): Score {
    assertIndexName(indexName);
    if (!(record.ts instanceof Date)) throw new InvalidArgumentError(`Record ${record.data_id} has no timestamp in "ts".`);
    return record.ts.getTime();
  }

  primaryKey(record: DeviceData): number {
    return record.data_id;
  }

  storageRecordsSpec(spec: TimeRangeSpec): StorageRecordsSpec<DeviceData> {
    return new StorageRecordsSpec(INDEX_NAME, [new Interval(spec.ge.getTime(), spec.lt.getTime())]);
  }

  dbRecordsSpec(spec: TimeRangeSpec): QueryArgsDbRecordsSpec<DeviceData> {
    return new QueryArgsDbRecordsSpec<DeviceData>(this.queryRange, [spec.ge, spec.lt]);
  }

  prepareAdjustment(spec: TimeRangeSpec): TimeRangeAdjustment {
    const expired: Interval[] = [];
    // The window before the first load is empty: nothing to expire.
    if (this.ge < this.lt) {
      if (this.ge < spec.ge) expired.push(new Interval(this.ge.getTime(), spec.ge.getTime()));
      if (this.lt > spec.lt) expired.push(new Interval(spec.lt.getTime(), this.lt.getTime()));
    }
    const expireSpec = expired.length > 0 ? new StorageRecordsSpec<DeviceData>(INDEX_NAME, expired) : null;
    return new TimeRangeAdjustment(expireSpec, this.dbRecordsSpec(spec), spec.ge, spec.lt);
  }

  commitAdjustment(adjustment: TimeRangeAdjustment): void {
    this.ge = adjustment.ge;
    this.lt = adjustment.lt;
  }

  covers(spec: TimeRangeSpec): boolean {
    return this.ge <= spec.ge && spec.lt <= this.lt;
  }

  override coverage(): Coverage {
    return { [INDEX_NAME]: this.ge < this.lt ? [new Interval(this.ge.getTime(), this.lt.getTime())] : [] };
  }
}

function assertIndexName(indexName: string): void {
  if (indexName !== INDEX_NAME) throw new InvalidArgumentError(`TimeRangeIndexes has only the index "${INDEX_NAME}", not "${indexName}".`);
}

/** A record as the example's storage keeps it: the same fields, a class of its own, so it prints as `CachedRecord { … }`. */
export class CachedRecord implements DeviceData {
  data_id!: number;
  data!: number;
  ts!: Date;
}

async function* asCachedRecords(records: AsyncIterable<DeviceData> | Iterable<DeviceData>): AsyncGenerator<DeviceData> {
  for await (const record of records) yield Object.assign(new CachedRecord(), record);
}

/** A LocalStorageTable that stores every record as a {@link CachedRecord}, only to make the origin of records visible. */
class OriginShowingStorageTable extends LocalStorageTable<DeviceData, number> {
  override putRecords(records: AsyncIterable<DeviceData> | Iterable<DeviceData>): Promise<number> {
    return super.putRecords(asCachedRecords(records));
  }

  override scratchPutRecords(records: AsyncIterable<DeviceData> | Iterable<DeviceData>): Promise<number> {
    return super.scratchPutRecords(asCachedRecords(records));
  }
}

/** Options of {@link main}. */
export interface TimeRangeExampleOptions {
  /** The Postgres to run against; default TABLECACHE_POSTGRES_URL, then postgres://postgres@127.0.0.1:5432/postgres. */
  readonly postgresUrl?: string;
  /** Receives each line the example prints; default `console.log`. */
  readonly print?: (line: string) => void;
  /** Wraps the example's database access (e.g. to watch its queries); default none. */
  readonly wrapDbAccess?: (dbAccess: DbAccess) => DbAccess;
}

/**
 * Runs the example: sets up its schema, tells the story on `print`, and drops
 * the schema again (also when something fails).
 */
export async function main(options: TimeRangeExampleOptions = {}): Promise<void> {
  const postgresUrl = options.postgresUrl ?? process.env.TABLECACHE_POSTGRES_URL ?? DEFAULT_POSTGRES_URL;
  const print = options.print ?? ((line: string) => console.log(line));
  const connection = { connectionString: postgresUrl, options: searchPathOption(SCHEMA) };

  // Note >= and < in the query: specs are half-open ranges.
  const indexes = new TimeRangeIndexes('SELECT * FROM device_data WHERE ts >= $1 AND ts < $2');
  await using postgresAccess = new PostgresAccess(connection);
  const dbAccess = options.wrapDbAccess?.(postgresAccess) ?? postgresAccess;
  const table = new CachedTable(indexes, dbAccess, new OriginShowingStorageTable(indexes, { tableName: 'device_data' }));

  const printRecords = async (ge: string, lt: string) => {
    for await (const record of table.getRecords(INDEX_NAME, ge, lt)) print(inspect(record, { breakLength: Infinity }));
  };

  const pool = new pg.Pool(connection);
  try {
    await createDeviceData(pool);

    // Cache the window from noon on Jan 1 to noon on Jan 3; records before
    // and after it stay in Postgres only.
    await table.load(INDEX_NAME, '2023-01-01T12:00:00', '2023-01-03T12:00:00');

    // A range inside the window comes wholly from the cache. A range that
    // reaches outside it, even by a little, comes wholly from Postgres.
    print('All records in cache:');
    await printRecords('2023-01-02', '2023-01-03');
    print('Not all records in cache (will be loaded from DB):');
    await printRecords('2023-01-01', '2023-01-05');

    // Move the window: records that fall out are expired, new ones loaded.
    await table.adjust(INDEX_NAME, '2023-01-03', '2023-01-06');
    print('Records we have expired from cache are loaded from the DB:');
    await printRecords('2023-01-02', '2023-01-03');
    print('Newer records were added to the cache:');
    await printRecords('2023-01-04', '2023-01-06');

    // A change that moves a record's score must be invalidated with its old
    // and its new score: record 4 moves from Jan 4 to Jan 5, so the old spec
    // is a few minutes around midnight of Jan 4, the new one around midnight
    // of Jan 5. (All of Jan 4 to Jan 6 would do too.) Both must be covered:
    // the new spec could not reach past Jan 6, where the window ends.
    await pool.query(`UPDATE device_data SET ts = '2023-01-05T00:00:00Z' WHERE data_id = 4`);
    table.invalidateRecords(
      [indexes.createSpec(INDEX_NAME, '2023-01-03T23:50:00', '2023-01-04T00:10:00')],
      [indexes.createSpec(INDEX_NAME, '2023-01-04T23:50:00', '2023-01-05T00:10:00')],
    );
    print('Record 4 with updated ts inside of the covered range:');
    await printRecords('2023-01-04', '2023-01-06');

    // Moved out of the window, record 4 is read from Postgres, correctly,
    // because the range is not covered. Storage still holds its old version.
    await pool.query(`UPDATE device_data SET ts = '2023-01-07T00:00:00Z' WHERE data_id = 4`);
    print('Record 4 with updated ts outside of the covered range (fetched from DB):');
    await printRecords('2023-01-04', '2023-01-08');

    // To cache it again, invalidate the covered range it left (which drops
    // the old version), then widen the window to where it is now. adjust()
    // refreshes invalid records first.
    const leftRange = indexes.createSpec(INDEX_NAME, '2023-01-04', '2023-01-06');
    table.invalidateRecords([leftRange], [leftRange]);
    await table.adjust(INDEX_NAME, '2023-01-03', '2023-01-08');
    print('Record 4 with updated ts now inside the covered range after the adjustment:');
    await printRecords('2023-01-04', '2023-01-08');

    // Without forceRefreshOnNextRead, reads keep getting the old record, and
    // do not wait for a refresh, until refreshInvalid() runs.
    await pool.query('UPDATE device_data SET data = 5 WHERE data_id = 4');
    const recordFour = indexes.createSpec(INDEX_NAME, '2023-01-07', '2023-01-08');
    table.invalidateRecords([recordFour], [recordFour], { forceRefreshOnNextRead: false });
    print('Record 4 still with the old data with forceRefreshOnNextRead: false:');
    await printRecords('2023-01-04', '2023-01-08');
    print('Record 4 updated after manual refresh:');
    await table.refreshInvalid();
    await printRecords('2023-01-04', '2023-01-08');
  } finally {
    try {
      await pool.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(SCHEMA)} CASCADE`);
    } finally {
      await pool.end();
    }
  }
}

/** Creates the example's schema afresh with four records, one a day at midnight UTC from Jan 1, 2023. */
async function createDeviceData(pool: pg.Pool): Promise<void> {
  const s = pg.escapeIdentifier(SCHEMA);
  // timestamptz: a JavaScript Date is an instant, and so is a timestamptz,
  // whatever the time zones of the machine and the database session.
  await pool.query(`
    DROP SCHEMA IF EXISTS ${s} CASCADE;
    CREATE SCHEMA ${s};
    CREATE TABLE ${s}.device_data (
      data_id integer PRIMARY KEY,
      data integer NOT NULL,
      ts timestamptz NOT NULL
    );
    INSERT INTO ${s}.device_data (data_id, data, ts) VALUES
      (1, 1, '2023-01-01T00:00:00Z'),
      (2, 2, '2023-01-02T00:00:00Z'),
      (3, 3, '2023-01-03T00:00:00Z'),
      (4, 4, '2023-01-04T00:00:00Z');
  `);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
