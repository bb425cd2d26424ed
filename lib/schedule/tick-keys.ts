/** The Redis keys of one job; the hash tag keeps them in one Cluster slot, so one script can touch both. */
export interface TickKeys {
  /** The last tick claimed: a hash of its fields (see tick.scripts.ts). */
  claimed: string;
  /** The record of the last run (a CronRun, one field per property). */
  lastRun: string;
}

export function tickKeys(prefix: string, job: string): TickKeys {
  // As for lock keys: a name starting with `}` (or, to keep the mapping
  // one-to-one, a backslash) would leave the hash tag empty, so it gets a
  // leading backslash.
  const tag = job.startsWith('}') || job.startsWith('\\') ? `\\${job}` : job;
  const base = `${prefix}{${tag}}`;
  return { claimed: `${base}:tick`, lastRun: `${base}:run` };
}

/** The name of the lock held while a job runs, in the module's lock namespace. */
export function jobLockName(job: string): string {
  return `cron-job:${job}`;
}
