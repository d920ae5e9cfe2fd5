import type { ConfigInput } from './configSchema.ts';

/**
 * Types a configuration written as a JS/TS module, so the editor checks it as
 * the loader will; returns it unchanged. The module may also give a table an
 * `indexes` factory (custom {@link Indexes}) instead of naming a `module`.
 *
 * @example
 * ```ts
 * // tablecache.config.ts
 * import { defineConfig } from 'tablecache/config';
 * export default defineConfig({
 *   postgres: { url: '${TABLECACHE_POSTGRES_URL}' },
 *   redis: { url: '${TABLECACHE_REDIS_URL}' },
 *   tables: { users: { query: 'SELECT * FROM users', primaryKey: 'user_id', sources: { users: { key: 'user_id' } } } },
 * });
 * ```
 */
export function defineConfig(config: ConfigInput): ConfigInput {
  return config;
}
