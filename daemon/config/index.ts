/**
 * The configuration file shared by the CLI and the daemon: loading (YAML,
 * JSON, JS/TS modules), `${VAR}` substitution, validation with paths in every
 * message, checks against the live database, and the trigger input it implies.
 *
 * @packageDocumentation
 */
export { ConfigError, formatConfigPath } from './configError.ts';
export {
  CONFIG_DEFAULTS,
  configFileSchema,
  type CaptureConfig,
  type CaptureMethod,
  type ConfigInput,
  type IndexesFactory,
  type RedisClusterConfig,
  type RedisConfig,
  type RedisSentinelConfig,
  type RedisTlsConfig,
  type SourceConfig,
  type TableConfig,
  type TablecacheConfig,
} from './configSchema.ts';
export { defineConfig } from './defineConfig.ts';
export { substituteEnvironment } from './environment.ts';
export { loadConfig, parseConfig, type ConfigOrigin } from './loadConfig.ts';
export { checkConfigAgainstDatabase, ConfigQueryError } from './checkConfigAgainstDatabase.ts';
export { triggerSpecFromConfig } from './triggerSpecFromConfig.ts';
export { logicalCaptureSpecFromConfig } from './logicalCaptureSpecFromConfig.ts';
export { redactUrl } from './redactUrl.ts';
export { nearestNames } from './nearestNames.ts';
