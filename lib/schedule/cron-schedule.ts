import { InvalidCronJobError } from '../errors/invalid-cron-job.error.js';
import { messages } from '../redis-tx.messages.js';

/** The part of the `cron` package's CronTime used here: typed locally, so no type of `cron` reaches the package's declarations. */
interface CronTimeLike {
  timeZone?: string;
  getNextDateFrom(start: Date, timeZone?: string): { toMillis(): number };
}
type CronTimeClass = new (
  source: string,
  timeZone?: string | null,
  utcOffset?: number | null,
) => CronTimeLike;

let loading: Promise<CronTimeClass> | undefined;

/**
 * The `cron` package that `@nestjs/schedule` fires `@Cron` with, loaded on
 * first use so that an application without `@OncePerTick()` never needs
 * it. Its ticks are then computed by the very code that schedules them.
 */
export function loadCronTime(label: string): Promise<CronTimeClass> {
  loading ??= import('cron').then((module: unknown) => {
    const exports = module as { CronTime?: CronTimeClass; default?: { CronTime?: CronTimeClass } };
    const found = exports.CronTime ?? exports.default?.CronTime;
    if (typeof found !== 'function') throw new Error('the package has no CronTime');
    return found;
  });
  return loading.catch((cause: unknown) => {
    loading = undefined;
    throw new InvalidCronJobError(messages.cronTickCronMissing(label), label, 'cron-missing', {
      cause,
    });
  });
}

/** Where a job's expression is evaluated: an IANA time zone, or a fixed offset from UTC in minutes. */
/** The error for an expression that does not parse, or parses yet never fires; `why` says which. */
export function badCronExpression(
  label: string,
  expression: unknown,
  why: string,
  cause?: unknown,
): InvalidCronJobError {
  return new InvalidCronJobError(
    messages.cronTickBadExpression(label, expression, why),
    label,
    'bad-expression',
    cause === undefined ? undefined : { cause },
  );
}

export interface CronZone {
  timeZone?: string;
  utcOffset?: number;
}

/** One second: cron's finest unit; every tick falls on a whole second. */
const SECOND = 1_000;

/**
 * A recurring cron expression's ticks, as `cron` computes them: the
 * scheduled fire times, in ms since the epoch, independent of any clock.
 */
export class CronSchedule {
  private constructor(
    private readonly time: CronTimeLike,
    private readonly zone: string | undefined,
  ) {}

  /** Parses `expression`; InvalidCronJobError when it does not parse or names no recurring time. */
  static of(
    CronTime: CronTimeClass,
    expression: unknown,
    zone: CronZone,
    label: string,
  ): CronSchedule {
    if (typeof expression !== 'string') {
      throw badCronExpression(label, expression, 'it is not a cron expression string');
    }
    let time: CronTimeLike;
    try {
      time =
        zone.utcOffset !== undefined
          ? new CronTime(expression, null, zone.utcOffset)
          : new CronTime(expression, zone.timeZone ?? null, null);
    } catch (cause) {
      throw badCronExpression(label, expression, (cause as Error).message, cause);
    }
    return new CronSchedule(time, zoneName(time, zone));
  }

  /** The first tick strictly after `ms`. */
  next(ms: number): number {
    return this.time.getNextDateFrom(new Date(ms), this.zone).toMillis();
  }

  /**
   * The latest tick at or before `ms`. Found by stepping back in doubling
   * strides until a tick is behind, then halving: about 2·log2(distance in
   * seconds) evaluations, however sparse or dense the schedule.
   */
  latestAtOrBefore(ms: number): number {
    // `next(s) <= ms` holds for every s before the wanted tick and for none at or after it.
    const seconds = Math.floor(ms / SECOND);
    const before = (s: number) => this.next(s * SECOND) <= ms;
    let stride = 1;
    while (!before(seconds - stride)) {
      stride *= 2;
      // Beyond a few centuries nothing recurs: `cron` itself gives up sooner.
      if (stride > 2 ** 34) throw new RangeError('no cron tick in the past');
    }
    let low = seconds - stride; // before(low)
    let high = seconds - stride / 2; // !before(high), or `seconds` itself
    if (stride === 1) high = seconds;
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (before(middle)) low = middle;
      else high = middle;
    }
    return this.next(low * SECOND);
  }

  /** How many ticks fall strictly between `after` and `before`, counting up to `limit`. */
  ticksBetween(after: number, before: number, limit: number): number {
    let count = 0;
    for (let tick = this.next(after); tick < before && count < limit; tick = this.next(tick)) {
      count++;
    }
    return count;
  }
}

/** The zone `cron` evaluates in, as its CronJob does: the time zone, or `UTC±hh:mm` for an offset. */
function zoneName(time: CronTimeLike, zone: CronZone): string | undefined {
  if (zone.utcOffset === undefined) return time.timeZone;
  const sign = zone.utcOffset < 0 ? '-' : '+';
  const hours = String(Math.trunc(Math.abs(zone.utcOffset) / 60)).padStart(2, '0');
  const minutes = String(Math.abs(zone.utcOffset) % 60).padStart(2, '0');
  return `UTC${sign}${hours}:${minutes}`;
}
