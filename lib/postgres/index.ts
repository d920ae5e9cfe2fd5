export {
  PostgresAccess,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CONNECTION_TIMEOUT_MS,
  type PostgresAccessOptions,
  type PostgresAccessPoolOptions,
  type PostgresAccessExistingPoolOptions,
  type PostgresReadOptions,
} from './postgresAccess.ts';
export { QueryFailedError, ConnectionFailedError } from './errors.ts';
export { exactTypeParsers } from './typeParsers.ts';
export {
  sendBarrier,
  barrierPayloadSchema,
  BARRIER_PAYLOAD_VERSION,
  type BarrierPayload,
  type BarrierQueryable,
  type SendBarrierOptions,
} from './barrier.ts';
