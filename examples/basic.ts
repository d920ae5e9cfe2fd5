/**
 * The basic example: a join of two Postgres tables cached in process memory.
 *
 * It shows how to build a CachedTable from an existing Indexes implementation
 * (PrimaryKeyIndexes), a PostgresAccess and a LocalStorageTable; how to load
 * it and read records; how to invalidate records that changed in the
 * database; and how to refresh invalid records by hand.
 *
 * Run it with `npx tsx examples/basic.ts` against a Postgres given by
 * TABLECACHE_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 * It works in a schema of its own, `tablecache_example_basic`, which it
 * creates at the start and drops at the end; nothing else is touched.
 */
import { inspect } from 'node:util';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { CachedTable, PrimaryKeyIndexes, RecordNotFoundError } from '../lib/core/index.ts';
import { LocalStorageTable } from '../lib/local/index.ts';
import { PostgresAccess } from '../lib/postgres/index.ts';
import { SEED_USERS_QUERY, createSeedSchema, dropSeedSchema, searchPathOption } from './seedSchema.ts';

const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const SCHEMA = 'tablecache_example_basic';

/** A row of the cached join. */
interface User {
  user_id: number;
  city_id: number;
  user_name: string;
  user_nickname: string | null;
  city_name: string;
}

/** Options of {@link main}. */
export interface BasicExampleOptions {
  /** The Postgres to run against; default TABLECACHE_POSTGRES_URL, then postgres://postgres@127.0.0.1:5432/postgres. */
  readonly postgresUrl?: string;
  /** Receives each line the example prints; default `console.log`. */
  readonly print?: (line: string) => void;
}

/**
 * Runs the example: sets up its schema, tells the story on `print`, and
 * drops the schema again (also when something fails).
 */
export async function main(options: BasicExampleOptions = {}): Promise<void> {
  const postgresUrl = options.postgresUrl ?? process.env.TABLECACHE_POSTGRES_URL ?? DEFAULT_POSTGRES_URL;
  const print = options.print ?? ((line: string) => console.log(line));
  const show = (record: unknown) => print(inspect(record, { breakLength: Infinity }));
  const connection = { connectionString: postgresUrl, options: searchPathOption(SCHEMA) };

  // Two queries over the same join: every row, and the rows of the primary
  // keys in the array $1. PrimaryKeyIndexes turn specs of either kind into
  // storage and database reads. They are simple (every cached key is kept in
  // memory, every requested key is its own score interval), which makes them
  // good for a demonstration; the time-range example shows an Indexes of
  // your own.
  const indexes = new PrimaryKeyIndexes((user: User) => user.user_id, SEED_USERS_QUERY, `${SEED_USERS_QUERY} WHERE uc.user_id = ANY ($1)`);

  // The database (the truth), the fast storage (here: in process memory), and
  // the cached table tying them together through the indexes.
  await using dbAccess = new PostgresAccess(connection);
  const storage = new LocalStorageTable(indexes, { tableName: 'users' });
  const table = new CachedTable(indexes, dbAccess, storage);

  const pool = new pg.Pool(connection);
  try {
    await createSeedSchema(pool, SCHEMA);

    // Load by an index name and that index's arguments (a spec object from
    // indexes.createSpec() works too): here every primary key.
    await table.load('primary_key', { all: true });
    // load() has finished, so this returns at once. A load started in the
    // background could be awaited here, e.g. in a readiness check.
    await table.loaded();

    // Served from storage: the database is not asked.
    print('Users with primary key 1 and 2:');
    for await (const user of table.getRecords('primary_key', 1, 2)) show(user);

    // getFirstRecord() takes the same arguments and returns one record, or
    // throws RecordNotFoundError. Every key was loaded, so the indexes know
    // that a key missing from storage is missing from the database too: no
    // query is made.
    print('Trying to find user with primary key 3:');
    try {
      await table.getFirstRecord('primary_key', 3);
    } catch (error) {
      if (!(error instanceof RecordNotFoundError)) throw error;
      print('No user with primary key 3 exists.');
    }

    // A change in the database is not seen by the cache until the changed
    // records are invalidated: once with specs of them as they are in storage
    // (old), once as they are in the database now (new). Here both are the
    // same key. The next read of user 1 refreshes it first.
    await pool.query('UPDATE users SET name = $1 WHERE user_id = $2', ['New Name', 1]);
    print('User 1 has changed in the DB, but not yet in cache:');
    show(await table.getFirstRecord('primary_key', 1));
    const userOne = indexes.createSpec('primary_key', 1);
    table.invalidateRecords([userOne], [userOne]);
    print('After invalidating, a refresh is triggered to update user 1:');
    show(await table.getFirstRecord('primary_key', 1));

    // Invalidating also brings in records inserted after the load, as long as
    // the specs are covered (all keys are). adjust() is the other way, and
    // lets an Indexes observe every record it adds.
    await pool.query(`
      INSERT INTO users (user_id, name) VALUES (3, 'User 3');
      INSERT INTO users_cities (user_id, city_id) SELECT 3, city_id FROM cities LIMIT 1`);
    const userThree = indexes.createSpec('primary_key', 3);
    table.invalidateRecords([userThree], [userThree]);

    // Refreshes happen when a read meets an invalid record, or right now on
    // request, so that the next reads are served from storage at once.
    print('Manually triggering a refresh.');
    await table.refreshInvalid();
    print('Newly inserted user 3:');
    show(await table.getFirstRecord('primary_key', 3));
  } finally {
    try {
      await dropSeedSchema(pool, SCHEMA);
    } finally {
      await pool.end();
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
