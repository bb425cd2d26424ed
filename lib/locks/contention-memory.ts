/**
 * Which lock names this process found contended lately: someone else held
 * the lock, or waited for it. A name not seen so is taken and released with
 * the short scripts that assume nobody waits (one key and argument list
 * each, a round trip saved on nothing); a contended one goes straight to the
 * scripts that keep the line, so that a busy lock does not pay for a short
 * try that fails first.
 */
export class ContentionMemory {
  private readonly lastSeen = new Map<string, number>();

  /** Remembers that `name` was contended now. */
  seen(name: string): void {
    if (this.lastSeen.size >= NAMES_KEPT && !this.lastSeen.has(name)) this.lastSeen.clear();
    this.lastSeen.set(name, performance.now());
  }

  /** Whether `name` was contended within the last few seconds. */
  recent(name: string): boolean {
    const at = this.lastSeen.get(name);
    return at !== undefined && performance.now() - at < CONTENDED_FOR_MS;
  }
}

/**
 * How long a name counts as contended after the last sign of it. Contention
 * comes in bursts; for this long after one, the lock keeps taking the path
 * that serves a line at once, and after it a first short try costs a round
 * trip only if the lock turns out busy again.
 */
const CONTENDED_FOR_MS = 10_000;

/** How many names are remembered before the memory starts over: a few hundred kilobytes at most. */
const NAMES_KEPT = 4096;
