/** Handles (sockets, timers…) keeping the process alive, by kind. */
export function openHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    // A socket being shut down shows this request briefly; the socket itself is counted.
    if (kind === 'TTYWrap' || kind === 'SimpleShutdownWrap') continue;
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

/**
 * Waits until no more handles are open than in `baseline`, polling, since a
 * socket's last handle goes a moment after its 'close' with no event to
 * await. A handle leaked for good never goes, and the assertion then shows
 * which kinds are left.
 */
export async function expectNoHandlesBeyond(
  baseline: Record<string, number>,
  timeoutMs = 5_000,
): Promise<void> {
  const within = () =>
    Object.entries(openHandles()).every(([kind, count]) => count <= (baseline[kind] ?? 0));
  const deadline = Date.now() + timeoutMs;
  while (!within() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!within()) expect(openHandles()).toEqual(baseline);
}
