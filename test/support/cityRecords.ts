import type { RecordScorer } from '../../lib/core/storageTable.ts';

/** A record of the small `cities` table the Redis topology tests (replicas, Sentinel, Cluster) store and read. */
export interface City {
  city_id: number;
  name: string;
}

/** Cities by id, in the one index readers of those tests query. */
export const cityScorer: RecordScorer<City, number> = {
  indexNames: ['primary_key'],
  score: (_, city) => city.city_id,
  primaryKey: (city) => city.city_id,
};
