/** Exponential backoff with full jitter: contenders spread out instead of colliding again in step. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
  return Math.round(Math.random() * ceiling);
}
