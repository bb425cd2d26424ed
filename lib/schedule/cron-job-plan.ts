import { InvalidCronJobError } from '../errors/invalid-cron-job.error.js';
import { messages } from '../redis-tx.messages.js';
import { badCronExpression, CronSchedule, loadCronTime } from './cron-schedule.js';
import type { MisfirePolicy, OncePerTickOptions } from './cron-ticks.options.js';

// The metadata keys `@Cron()` of @nestjs/schedule sets with SetMetadata. Read
// by name, so this library needs @nestjs/schedule only where it is used.
const CRON_OPTIONS = 'SCHEDULE_CRON_OPTIONS';

/** What `@Cron(cronTime, options)` recorded on a method (the parts read here). */
interface CronMetadata {
  cronTime?: unknown;
  name?: unknown;
  timeZone?: unknown;
  utcOffset?: unknown;
}

/** One `@OncePerTick()` method, resolved at bootstrap: its job, its ticks and its terms. */
export interface CronJobPlan {
  job: string;
  schedule: CronSchedule;
  misfire: MisfirePolicy;
  lockTtlMs?: number;
  label: string;
}

/**
 * Resolves a method's job from its `@Cron()` metadata and its
 * `@OncePerTick()` options (which win); InvalidCronJobError when there is
 * no schedule, no name, or an expression that names no recurring time.
 */
export async function planCronJob(
  method: (...args: never[]) => unknown,
  options: OncePerTickOptions,
  label: string,
  now: number,
): Promise<CronJobPlan> {
  const cron = Reflect.getMetadata(CRON_OPTIONS, method) as CronMetadata | undefined;
  const expression = options.cron ?? cron?.cronTime;
  if (expression === undefined) {
    throw new InvalidCronJobError(messages.cronTickNoCron(label), label, 'no-cron');
  }
  const job = options.job ?? cron?.name;
  if (typeof job !== 'string' || job.trim() === '') {
    throw new InvalidCronJobError(messages.cronTickNoName(label), label, 'no-name');
  }
  const CronTime = await loadCronTime(label);
  // An explicit expression goes with its own time zone, not @Cron's.
  const zone =
    options.cron !== undefined || options.timeZone !== undefined
      ? { timeZone: options.timeZone }
      : {
          timeZone: typeof cron?.timeZone === 'string' ? cron.timeZone : undefined,
          utcOffset: typeof cron?.utcOffset === 'number' ? cron.utcOffset : undefined,
        };
  const schedule = CronSchedule.of(CronTime, expression, zone, label);
  try {
    // Some expressions parse yet never fire (February 30th): find out now, not at the first tick.
    schedule.latestAtOrBefore(schedule.next(now));
  } catch (cause) {
    throw badCronExpression(label, expression, (cause as Error).message, cause);
  }
  return {
    job,
    schedule,
    misfire: options.misfire ?? 'skip',
    lockTtlMs: options.lockTtlMs,
    label,
  };
}
