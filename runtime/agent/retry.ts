/** Bounded exponential backoff for calls to remote services (S3 above all). */
import type { Logger } from './log';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
}

/** No single wait grows beyond this, however many attempts are configured. */
export const MAX_DELAY_MS = 30_000;

/** Delay before attempt `n + 1` (n ≥ 1): base·2^(n-1), capped, plus up to 20% jitter so agents of many tenants do not retry in step. */
export function backoffDelay(policy: RetryPolicy, failedAttempts: number, random: () => number = Math.random): number {
  const exponential = Math.min(policy.baseDelayMs * 2 ** (failedAttempts - 1), MAX_DELAY_MS);
  return Math.round(exponential * (1 + 0.2 * random()));
}

/** Runs `call` until it succeeds or `policy.attempts` are spent; the last error is rethrown with the count. */
export async function withRetry<T>(what: string, policy: RetryPolicy, log: Logger, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const message = (error as Error).message || (error as Error).name;
      if (attempt >= policy.attempts || signal?.aborted) {
        throw new Error(`${what} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${message}`);
      }
      const delay = backoffDelay(policy, attempt);
      log.warn('retrying', { what, attempt, delayMs: delay, error: message });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
