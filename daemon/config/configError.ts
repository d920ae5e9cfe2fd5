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
