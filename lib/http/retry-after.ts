import type { RedisTxHttpCode } from '../errors/http-status.js';

/**
 * The Retry-After (in whole seconds) the library can vouch for, or undefined.
 * Only a shutdown has a known end: by the shutdown deadline this instance is
 * gone and another (or its restart) serves the retry. For a lock held
 * elsewhere, a lost Redis or an unknown outcome the library cannot tell when
 * a retry would succeed, so it promises nothing.
 */
export function retryAfterSeconds(
  code: RedisTxHttpCode,
  shutdownTimeoutMs: number,
): number | undefined {
  return code === 'SHUTTING_DOWN' ? Math.max(1, Math.ceil(shutdownTimeoutMs / 1_000)) : undefined;
}
