import { QueryArgsDbRecordsSpec } from '../../../lib/core/dbAccess.ts';
import { InvalidArgumentError, UnsupportedIndexOperationError } from '../../../lib/core/errors.ts';
import { Adjustment, IndexSpec, Indexes } from '../../../lib/core/indexes.ts';
import { Interval, type Score } from '../../../lib/core/interval.ts';
import { primaryKeyScore } from '../../../lib/core/primaryKeyScore.ts';
import { StorageRecordsSpec } from '../../../lib/core/storageRecordsSpec.ts';
import { ALL_USERS, SOME_USERS, USERS_IN_CITIES, type User } from './usersFixture.ts';

type UserIndexName = 'primary_key' | 'city';

/** Users by id (`primary_key`, no ids meaning every user) or by city (`city`). */
export class UserCitySpec extends IndexSpec {
  constructor(
    indexName: UserIndexName,
    readonly values: readonly (number | string)[],
  ) {
    super(indexName);
  }

  get everyUser(): boolean {
    return this.indexName === 'primary_key' && this.values.length === 0;
  }

  override toString(): string {
    return this.everyUser ? 'every user' : `users with ${this.indexName} in ${this.values.join(', ')}`;
  }
}

/**
 * Two indexes over users, `primary_key` and `city`, for tests that need an
 * invalidation to name some indexes and leave others out. Loads every user
 * (only by `primary_key`); covers everything once loaded. With
 * `cityCoverageUnknown` the city index cannot check coverage.
 */
export class UserCityIndexes extends Indexes<User, number, UserCitySpec, (number | string)[]> {
  readonly indexNames = ['primary_key', 'city'] as const;
  private loaded = false;

  constructor(private readonly options: { cityCoverageUnknown?: boolean } = {}) {
    super();
  }

  createSpec(indexName: string, ...values: (number | string)[]): UserCitySpec {
    return new UserCitySpec(assertIndexName(indexName), values);
  }

  score(indexName: string, user: User): Score {
    return assertIndexName(indexName) === 'primary_key' ? user.id : primaryKeyScore(user.city);
  }

  primaryKey(user: User): number {
    return user.id;
  }

  storageRecordsSpec(spec: UserCitySpec): StorageRecordsSpec<User> {
    if (spec.everyUser) return new StorageRecordsSpec<User>('primary_key', [Interval.everything()]);
    const values = new Set(spec.values);
    const field = (user: User) => (spec.indexName === 'primary_key' ? user.id : user.city);
    const scores = new Set(spec.values.map((value) => (typeof value === 'number' ? value : primaryKeyScore(value))));
    const intervals = [...scores].sort((a, b) => a - b).map((score) => Interval.onlyContaining(score));
    return new StorageRecordsSpec<User>(spec.indexName, intervals, (user) => values.has(field(user)));
  }

  dbRecordsSpec(spec: UserCitySpec): QueryArgsDbRecordsSpec<User> {
    if (spec.everyUser) return new QueryArgsDbRecordsSpec<User>(ALL_USERS, []);
    return new QueryArgsDbRecordsSpec<User>(spec.indexName === 'primary_key' ? SOME_USERS : USERS_IN_CITIES, [[...spec.values]]);
  }

  prepareAdjustment(spec: UserCitySpec): Adjustment<User> {
    if (!spec.everyUser) throw new UnsupportedIndexOperationError(`only loading every user is supported, not ${spec}`);
    return new Adjustment<User>(null, this.dbRecordsSpec(spec));
  }

  commitAdjustment(_adjustment: Adjustment<User>): void {
    this.loaded = true;
  }

  covers(spec: UserCitySpec): boolean {
    if (spec.indexName === 'city' && this.options.cityCoverageUnknown) {
      throw new UnsupportedIndexOperationError('the city index cannot check coverage');
    }
    return this.loaded;
  }
}

function assertIndexName(indexName: string): UserIndexName {
  if (indexName !== 'primary_key' && indexName !== 'city') throw new InvalidArgumentError(`No index "${indexName}".`);
  return indexName;
}
