/**
 * What a run does about ticks that nobody ran (every instance was down, or
 * each was still busy with an earlier run), found when a tick is claimed:
 *
 * - `'skip'` (the default): those ticks are dropped. The job runs at its
 *   next scheduled tick, as usual; that run's record counts them in
 *   `missedTicks`.
 * - `'run-once'`: as `'skip'`, and in addition, when the application starts,
 *   a job whose latest scheduled tick (at or before now) was never claimed,
 *   while an earlier tick was, claims that tick and runs once at once,
 *   instead of waiting for the next one. However many ticks were missed, it
 *   runs once for all of them, and never for a tick that was claimed.
 */
export type MisfirePolicy = 'skip' | 'run-once';

/** Options of `@OncePerTick()`. */
export interface OncePerTickOptions {
  /** The job's name, by which ticks are claimed. The name given to `@Cron(…, { name })` by default. */
  job?: string;
  /**
   * The cron expression whose ticks are claimed. The one given to `@Cron()`
   * by default; give it only for a method that is fired some other way.
   */
  cron?: string;
  /** Time zone of `cron` (IANA name). `@Cron()`'s `timeZone` by default, else the machine's. */
  timeZone?: string;
  /** What to do about ticks nobody ran; see {@link MisfirePolicy}. `'skip'`. */
  misfire?: MisfirePolicy;
  /** Lease of the lock held while the job runs, renewed while it runs. The module's `locks.ttlMs` by default. */
  lockTtlMs?: number;
}

/** Options of `CronTicksModule.forRoot()`. */
export interface CronTicksModuleOptions {
  /** Names this instance in run records. `<hostname>:<pid>` by default. */
  instanceId?: string;
  /**
   * This instance's clock, in milliseconds since the epoch: which tick a
   * call belongs to, and the start and end of a run, are read from it.
   * `Date.now` by default; tests give a skewed one.
   */
  clock?: () => number;
  /** Prepended to the Redis keys of the ticks and run records. `'cron:'`. */
  keyPrefix?: string;
}

/** The last run of a job, as recorded in Redis by the instance that ran it. */
export interface CronRun {
  job: string;
  /** The instance that ran it (`instanceId`). */
  instance: string;
  /** The fencing token of the job's lock for this run; it grows with every run. */
  fencingToken: number;
  /** The scheduled fire time of the tick this run claimed (ms since the epoch). */
  scheduledAt: number;
  /** When it started and ended, on the running instance's clock (ms since the epoch). */
  startedAt: number;
  endedAt?: number;
  /** `'running'` until it ends, or for good when the instance stopped before it could say. */
  outcome: 'running' | 'ok' | 'error';
  /** The name of the error it threw (`TypeError`…), never its message, which may hold data. */
  errorName?: string;
  /** Scheduled ticks between the previous claimed tick and this one that nobody ran, counted up to 100 (100 means at least 100). */
  missedTicks: number;
  /** Why it ran: its tick fired, or a start-up made up for missed ticks (`misfire: 'run-once'`). */
  trigger: 'tick' | 'catch-up';
}
