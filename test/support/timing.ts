import { setTimeout as sleep } from 'node:timers/promises';

const SAMPLE_EVERY_MS = 10;
/**
 * A bound allows this many times what was measured: the late timer or reply
 * the test is about, one more on the way to the assertion, and as much again
 * for what the sampling missed.
 */
const MULTIPLE = 4;

/**
 * How late things run on this machine right now, measured while a test
 * runs, so that a bound on "how soon" can be the library's own bound plus
 * this margin rather than a fixed number of milliseconds that a busy machine
 * exceeds. It samples the event loop's lag (a timer due at t fires at t +
 * lag) from start to stop, and takes the slowest of a few Redis round trips
 * when asked to; both grow with the load, and so does the margin.
 */
export class Slack {
  /**
   * A timer of our own rather than perf_hooks' monitorEventLoopDelay: that
   * one records a late tick only when the tick runs, so a stall just before
   * stop() (the very one that made the timed call late, whose continuation
   * runs first) was never counted. Here stop() also counts the tick that is
   * overdue at that moment.
   */
  private readonly ticker: NodeJS.Timeout;
  private lastTickAt = performance.now();
  private longestGapMs = 0;
  private stopped = false;
  private slowestRoundTripMs = 0;

  private constructor() {
    this.ticker = setInterval(() => this.noteGapUntil(performance.now()), SAMPLE_EVERY_MS);
    this.ticker.unref();
  }

  /** Starts sampling the event loop; call it before the timed work starts. */
  static start(): Slack {
    return new Slack();
  }

  /** Times `samples` round trips of `redis` (PING); the slowest one counts. */
  async measureRoundTrip(redis: { ping(): Promise<unknown> }, samples = 3): Promise<this> {
    for (let i = 0; i < samples; i++) {
      const sent = performance.now();
      await redis.ping();
      this.slowestRoundTripMs = Math.max(this.slowestRoundTripMs, performance.now() - sent);
    }
    return this;
  }

  /** The longest the event loop has run late since start, in ms. */
  get lagMs(): number {
    if (!this.stopped) this.noteGapUntil(performance.now(), false);
    return Math.max(0, this.longestGapMs - SAMPLE_EVERY_MS);
  }

  /** The margin to add to a bound: a multiple of the lag and round trip seen, and one sampling period. */
  get ms(): number {
    return Math.ceil(MULTIPLE * (this.lagMs + this.slowestRoundTripMs) + SAMPLE_EVERY_MS);
  }

  /** For failure messages: what the margin was made of. */
  describe(): string {
    return `slack ${Math.round(this.ms)} ms (event-loop lag ${Math.round(this.lagMs)} ms, round trip ${Math.round(this.slowestRoundTripMs)} ms)`;
  }

  stop(): void {
    if (this.stopped) return;
    this.noteGapUntil(performance.now(), false);
    this.stopped = true;
    clearInterval(this.ticker);
  }

  private noteGapUntil(now: number, ticked = true): void {
    this.longestGapMs = Math.max(this.longestGapMs, now - this.lastTickAt);
    if (ticked) this.lastTickAt = now;
  }
}

/**
 * Asks `condition` until it holds; fails once `timeoutMs()` has passed
 * (read on every check, so that a bound built on a {@link Slack} grows with
 * the lag seen while waiting). Only where nothing announces the change.
 */
export async function eventually(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: () => number,
  what: string,
): Promise<void> {
  const started = performance.now();
  while (!(await condition())) {
    const waited = performance.now() - started;
    if (waited > timeoutMs()) throw new Error(`${what}: not within ${Math.round(waited)} ms`);
    await sleep(SAMPLE_EVERY_MS);
  }
}
