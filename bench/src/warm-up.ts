/**
 * How long each trial runs its workload, unmeasured, before its measured
 * section. A contender made in a Nest application keeps V8 busy for a few
 * hundred milliseconds after it starts, compiling and optimizing on
 * background threads; process CPU counts those threads, so a warm-up of a
 * few hundred cycles charged that start-up work to the measured ones (a
 * plain ioredis client has next to none). Every contender gets the same
 * time, on top of a least number of runs.
 */
let warmUpMs = 500;

export function setWarmUpMs(ms: number): void {
  warmUpMs = ms;
}

/** Runs `step` at least `minRuns` times, and on until the warm-up time has passed. */
export async function warmUp(step: () => Promise<unknown>, minRuns: number): Promise<void> {
  const until = performance.now() + warmUpMs;
  for (let run = 0; run < minRuns || performance.now() < until; run++) await step();
}
