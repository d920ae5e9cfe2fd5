import { TablecacheError } from '../../lib/core/errors.ts';

/**
 * The configuration file (or a value in it) is not valid: the message names
 * the file, the path of the bad key (`tables.users.sources.cities.key`) and
 * what was expected. Code `TC_CONFIG_INVALID`.
 */
export class ConfigError extends TablecacheError {
  /** The file the configuration came from, when there is one. */
  readonly file: string | undefined;

  constructor(message: string, options: ErrorOptions & { file?: string } = {}) {
    super('TC_CONFIG_INVALID', message, options);
    this.file = options.file;
  }
}

/**
 * SQLSTATEs that say a query names something the database does not have: a
 * table, column, schema, function or other object. The configuration is then
 * wrong for this database (exit code 2), unlike a query Postgres refuses.
 */
export const MISSING_NAME_STATES: ReadonlySet<string> = new Set(['42P01', '42703', '3F000', '42883', '42704']);

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * A path into the configuration as people read it: `tables.users.primaryKey`,
 * with brackets for keys that are not plain (`tables.users.sources["public.users"]`)
 * and for list positions (`columns[2]`).
 */
export function formatConfigPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else if (typeof part === 'string' && PLAIN_KEY.test(part)) text += text === '' ? part : `.${part}`;
    else text += `[${JSON.stringify(String(part))}]`;
  }
  return text === '' ? '(top level)' : text;
}
