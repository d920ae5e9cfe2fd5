import { ConfigError, formatConfigPath } from './configError.ts';

// ${NAME}, ${NAME:-default}; $${ writes a literal ${.
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function substituteString(text: string, env: NodeJS.ProcessEnv, path: readonly PropertyKey[], file: string | undefined): string {
  return text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const value = env[name!];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    throw new ConfigError(
      `${file ? `${file}: ` : ''}${formatConfigPath(path)}: environment variable ${name} is not set (write \${${name}:-default} to give a default).`,
      { file },
    );
  });
}

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string of a parsed
 * configuration with the environment's values (`$${` stays a literal `${`).
 * Walks plain objects and arrays only, so functions and class instances in a
 * JS/TS configuration pass through untouched. An empty variable counts as unset.
 *
 * @throws {@link ConfigError} naming the variable and the config path of the first unset one without a default.
 */
export function substituteEnvironment(value: unknown, env: NodeJS.ProcessEnv, file?: string, path: readonly PropertyKey[] = []): unknown {
  if (typeof value === 'string') return substituteString(value, env, path, file);
  if (Array.isArray(value)) return value.map((item, index) => substituteEnvironment(item, env, file, [...path, index]));
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substituteEnvironment(item, env, file, [...path, key])]));
}
