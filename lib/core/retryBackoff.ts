/** How the pause between retries grows. */
export interface RetryBackoffPolicy {
  /** The longest pause after the first failure, in ms … */
  readonly minMs: number;
  /** … doubling with every further one up to this, in ms. */
  readonly maxMs: number;
  /** The jitter's source: uniform in [0, 1) (default `Math.random`); tests pass a fixed sequence. */
  readonly random?: () => number;
}

/** The daemon's policy: up to 100 ms, doubling up to 5 s (readers cap it at 2 s). */
export const DEFAULT_RETRY_BACKOFF: RetryBackoffPolicy = { minMs: 100, maxMs: 5_000 };

/**
 * The pause before retry `attempt` (0 for the first), with full jitter: a
 * uniformly random pause from 0 up to `minMs` doubled `attempt` times, at
 * most `maxMs`. Every retry loop of the daemon (the LISTEN connection and
 * the replication stream, each table's failed steps, Redis reconnects, the
 * start's waits for Postgres and Redis) and the readers' reconnects use it,
 * so that an outage is retried the same way everywhere: quickly at first,
 * then on average every `maxMs / 2`, never giving up. The jitter spreads the
 * daemons, standbys and readers that lost one Postgres or Redis at the same
 * moment over the whole interval, instead of letting them retry in lockstep
 * when it comes back.
 */
export function retryDelayMs(attempt: number, policy: RetryBackoffPolicy = DEFAULT_RETRY_BACKOFF): number {
  // The exponent is capped so that a long outage cannot overflow to Infinity (the cap hides it anyway).
  const ceiling = Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}
