/** A topology the test bed starts, and can stop. */
export interface Stoppable {
  stop(): Promise<void>;
}

export interface StartedBed<T> {
  /** What `start` made; read it inside a hook or a test, not at describe time. */
  readonly started: T;
  /**
   * Runs `fn` after the block's tests and before the topology stops, so that
   * clients are closed while their servers still answer. Jest runs afterAll
   * hooks in the order they are declared, so a plain afterAll declared later
   * would run after the servers are gone.
   */
  beforeStop(fn: () => unknown): void;
}

/**
 * Starts what `start` makes in beforeAll and stops it in afterAll, even when
 * tests fail; `start` itself must stop whatever it started before rejecting.
 */
export function useStarted<T extends Stoppable>(
  caller: string,
  start: () => Promise<T>,
  timeouts: { startMs: number; stopMs: number } = { startMs: 60_000, stopMs: 30_000 },
): StartedBed<T> {
  let started: T | undefined;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    started = await start();
  }, timeouts.startMs);

  afterAll(async () => {
    try {
      for (const close of closers.reverse()) await close();
    } finally {
      await started?.stop();
    }
  }, timeouts.stopMs);

  return {
    beforeStop: (fn) => void closers.push(fn),
    get started(): T {
      if (!started) {
        throw new Error(`${caller}: it starts in beforeAll; read it inside a hook or a test`);
      }
      return started;
    },
  };
}
