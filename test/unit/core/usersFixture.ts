import { CachedTable } from '../../../lib/core/cachedTable.ts';
import { PrimaryKeyIndexes } from '../../../lib/core/primaryKeyIndexes.ts';
import { LocalStorageTable } from '../../../lib/local/index.ts';
import { FakeDbAccess } from '../../support/fakeDbAccess.ts';
import { deferred, type Deferred } from './deferred.ts';
import { InstrumentedStorage } from './instrumentedStorage.ts';

export interface User {
  id: number;
  name: string;
  city: string;
}

export const ALL_USERS = 'all users';
export const SOME_USERS = 'users with ids in $1';
export const USERS_IN_CITIES = 'users with cities in $1';

/** A query held at some row until the test releases it. */
export interface QueryHold {
  /** Resolves when the held query has reached the hold. */
  readonly reached: Promise<void>;
  release(): void;
}

interface HoldPoint {
  readonly afterRows: number;
  readonly reached: Deferred;
  readonly released: Deferred;
}

/**
 * The users table of the database, in memory, answering three queries through
 * a {@link FakeDbAccess}. Each query reads the rows as they are when it starts
 * (like a snapshot), and a test can hold a query part-way or make it fail.
 */
export class UsersDb {
  readonly rows = new Map<number, User>();
  readonly access = new FakeDbAccess();
  private readonly holds = new Map<string, HoldPoint[][]>();
  private readonly failures = new Map<string, Error[]>();

  constructor(users: readonly User[]) {
    for (const user of users) this.rows.set(user.id, user);
    this.access
      .answer(ALL_USERS, () => this.serve(ALL_USERS, () => [...this.rows.values()]))
      .answer(SOME_USERS, ([ids]) => this.serve(SOME_USERS, () => this.selectBy((user) => (ids as number[]).includes(user.id))))
      .answer(USERS_IN_CITIES, ([cities]) => this.serve(USERS_IN_CITIES, () => this.selectBy((user) => (cities as string[]).includes(user.city))));
  }

  /** Answers another query with the users `matches(args)` accepts. */
  answerWith(query: string, matches: (args: readonly unknown[]) => (user: User) => boolean): this {
    this.access.answer(query, (args) => this.serve(query, () => this.selectBy(matches(args))));
    return this;
  }

  /** Inserts or replaces a row. */
  set(user: User): void {
    this.rows.set(user.id, user);
  }

  /** Holds the next run of `query` after it has yielded `afterRows` rows. */
  holdNext(query: string, { afterRows = 0 }: { afterRows?: number } = {}): QueryHold {
    return this.holdNextAt(query, [afterRows])[0]!;
  }

  /** Holds the next run of `query` at each of the row counts, in order; one hold per count. */
  holdNextAt(query: string, rowCounts: readonly number[]): QueryHold[] {
    const points = rowCounts.map((afterRows): HoldPoint => ({ afterRows, reached: deferred(), released: deferred() }));
    this.holds.set(query, [...(this.holds.get(query) ?? []), points]);
    return points.map((point) => ({ reached: point.reached.promise, release: () => point.released.resolve() }));
  }

  /** Makes the next run of `query` fail with `error` after its first row (or at once when it has none). */
  failNext(query: string, error: Error): void {
    this.failures.set(query, [...(this.failures.get(query) ?? []), error]);
  }

  private selectBy(predicate: (user: User) => boolean): User[] {
    return [...this.rows.values()].filter(predicate).sort((a, b) => a.id - b.id);
  }

  private async *serve(query: string, select: () => User[]): AsyncGenerator<Record<string, unknown>> {
    const rows = select();
    const points = this.holds.get(query)?.shift() ?? [];
    const failure = this.failures.get(query)?.shift();
    for (let i = 0; i <= rows.length; i++) {
      for (const point of points.filter((p) => p.afterRows === i)) {
        point.reached.resolve();
        await point.released.promise;
      }
      if (failure && (i === 1 || rows.length === 0)) throw failure;
      const row = rows[i];
      if (row) yield { ...row };
    }
  }
}

export const alice: User = { id: 1, name: 'Alice', city: 'Berlin' };
export const bob: User = { id: 2, name: 'Bob', city: 'Paris' };
export const carol: User = { id: 3, name: 'Carol', city: 'Rome' };

/** A users table cached by primary key, on a real LocalStorageTable wrapped for observation. */
export function usersTable(users: readonly User[] = [alice, bob]) {
  const db = new UsersDb(users);
  const indexes = new PrimaryKeyIndexes<User, number>((user) => user.id, ALL_USERS, SOME_USERS);
  const storage = new InstrumentedStorage<User>(new LocalStorageTable(indexes, { tableName: 'users' }));
  const table = new CachedTable(indexes, db.access, storage);
  return { db, indexes, storage, table };
}

/** Collects an async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Reads records of a cached table into an array sorted by id, so that unordered reads compare as arrays. */
export async function readUsers(records: AsyncIterable<User>): Promise<User[]> {
  return (await collect(records)).sort((a, b) => a.id - b.id);
}
