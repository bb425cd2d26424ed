/**
 * Resolves once every promise has settled, or after `ms`, whichever is
 * first; never rejects. For shutdown steps that must not hang on work (or a
 * Redis) that does not answer. The timer is cleared, so nothing is left behind.
 */
export async function settleWithin(
  promises: readonly Promise<unknown>[],
  ms: number,
): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(promises),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}
