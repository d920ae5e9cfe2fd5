/** How the pause between retries grows. */
export interface RetryBackoffPolicy {
  /** The pause after the first failure, in ms … */
  readonly minMs: number;
  /** … doubling with every further one up to this, in ms. */
  readonly maxMs: number;
}

/** The daemon's usual policy: 100 ms, doubling up to 5 s. */
export const DEFAULT_RETRY_BACKOFF: RetryBackoffPolicy = { minMs: 100, maxMs: 5_000 };

/**
 * The pause before retry `attempt` (0 for the first): `minMs` doubled
 * `attempt` times, at most `maxMs`. Every retry loop of the daemon (the
 * LISTEN connection, each table's failed steps, the start's waits for
 * Postgres and Redis) uses it, so that an outage is retried the same way
 * everywhere: quickly at first, then at most every `maxMs`, never giving up.
 */
export function retryDelayMs(attempt: number, policy: RetryBackoffPolicy = DEFAULT_RETRY_BACKOFF): number {
  // The exponent is capped so that a long outage cannot overflow to Infinity (the cap hides it anyway).
  return Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(Math.max(attempt, 0), 30));
}
