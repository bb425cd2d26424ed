import { Inject, Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Locked, LockService, RedisTx, Transactional } from '../../lib/index.js';
import { INSTANCE_ID } from './instance-id.js';

/**
 * When the report runs, read once at startup because `@Cron` takes its
 * expression when the class is declared. Every minute unless `REPORT_CRON`
 * says otherwise (six fields for seconds: `* * * * * *` is every second).
 */
const REPORT_CRON = process.env.REPORT_CRON || CronExpression.EVERY_MINUTE;

/**
 * How long the report's lock is kept after a run starts, however fast the
 * run is. The instances' timers fire a few milliseconds apart; without
 * this, a quick run would release the lock before a slower instance tried
 * it, and that instance would run the same tick again. It must exceed how
 * far apart the instances' clocks and timers are, and stay below the
 * shortest interval the job is scheduled at (a second, at most).
 */
const REPORT_LOCK_AT_LEAST_MS = 500;

export interface ReportRun {
  /** The scheduled second this run belongs to (ISO 8601). */
  tick: string;
  instance: string;
  /** Increases with every run, whichever instance makes it. */
  fencingToken: number;
  paidOrders: number;
}

/** Cron fires on whole seconds, give or take a few milliseconds: the nearest one is the tick. */
function tickOf(firedAt: number): string {
  return new Date(Math.round(firedAt / 1000) * 1000).toISOString();
}

@Injectable()
export class ReportService {
  private readonly logger = new Logger(ReportService.name);

  constructor(
    private readonly redis: RedisTx,
    private readonly locks: LockService,
    @Inject(INSTANCE_ID) private readonly instance: string,
  ) {}

  /** Fires on every instance; `report` lets only one of them run each tick. */
  @Cron(REPORT_CRON, { name: 'report' })
  async onSchedule(): Promise<void> {
    const tick = tickOf(Date.now());
    const run = await this.report(tick);
    if (run) this.logger.log(`report ran ${JSON.stringify(run)}`);
    else this.logger.log(`report skipped ${JSON.stringify({ tick, instance: this.instance })}`);
  }

  /**
   * The instance that gets the lock runs the report; the others skip it
   * (`onBusy: 'skip'` resolves to undefined without running the method).
   * The count and the record of the run are written in one transaction.
   */
  @Locked('jobs:report', { waitMs: 0, onBusy: 'skip', lockAtLeastFor: REPORT_LOCK_AT_LEAST_MS })
  @Transactional()
  async report(tick: string): Promise<ReportRun | undefined> {
    const run: ReportRun = {
      tick,
      instance: this.instance,
      fencingToken: this.locks.current('jobs:report')!.fencingToken,
      paidOrders: await this.redis.client.scard('orders:paid'),
    };
    this.redis.multi
      .incr('reports:count')
      .rpush('reports:runs', JSON.stringify(run))
      .ltrim('reports:runs', -1000, -1);
    return run;
  }
}
