import type { TestProject } from 'vitest/node';
import { createPostgresTemplateDirectory } from './privateServers.ts';
import { resolveTestPostgres, resolveTestRedis } from './serviceResolution.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the Postgres every integration test file creates its own database in. */
    postgresUrl: string;
    /** URL of the Redis every integration test file uses under its own key prefix, or an explanation why there is none. */
    redisUrl: string | null;
    redisUnavailableReason: string | null;
  }
}

/**
 * Finds (or starts) Postgres and Redis once for the whole run, so that the
 * test files, running in parallel, share one server each, and makes the
 * directory the run's private Postgres clusters copy their data directory from.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const postgres = await resolveTestPostgres();
  const redis = await resolveTestRedis();
  const template = await createPostgresTemplateDirectory();
  project.provide('postgresUrl', postgres.url);
  project.provide('redisUrl', redis.url);
  project.provide('redisUnavailableReason', redis.unavailableReason);
  return async () => {
    await redis.stop();
    await postgres.stop();
    template.remove();
  };
}
