/**
 * Retry delays of the reconciler: the first attempt after a drop is
 * immediate (no failure yet); after n failures in a row the next attempt
 * waits base * 2^(n-1), capped, minus up to `jitter` of it, so MCUs that
 * failed together do not retry in lock step. Pure: the random number is an
 * argument.
 */
export interface BackoffPolicy {
  /** Delay after the first failure, ms. */
  readonly baseMs: number;
  /** No delay grows beyond this, ms. */
  readonly maxMs: number;
  /** Fraction (0..1) of the delay taken off at random. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ baseMs: 250, maxMs: 10_000, jitter: 0.25 });

/** How long to wait before the next attempt after `failures` failures in a row; `random` is in [0, 1). */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: number): number {
  if (failures <= 0) return 0;
  // 2^30 already exceeds any sane cap; the exponent is bounded so the product stays finite.
  const grown = policy.baseMs * 2 ** Math.min(failures - 1, 30);
  const capped = Math.min(policy.maxMs, grown);
  return capped * (1 - policy.jitter * random);
}
