import { Inject, Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { CronTicks, OncePerTick, RedisTx, Transactional } from '../../lib/index.js';
import { INSTANCE_ID } from './instance-id.js';

/**
 * When the report runs, read once at startup because `@Cron` takes its
 * expression when the class is declared. Every minute unless `REPORT_CRON`
 * says otherwise (six fields for seconds: `* * * * * *` is every second).
 */
const REPORT_CRON = process.env.REPORT_CRON || CronExpression.EVERY_MINUTE;

export interface ReportRun {
  /** The scheduled second this run belongs to (ISO 8601). */
  tick: string;
  instance: string;
  /** Increases with every run, whichever instance makes it. */
  fencingToken: number;
  paidOrders: number;
}

/** Cron fires on whole seconds, or a few milliseconds after: the nearest one is the tick. */
function tickOf(firedAt: number): string {
  return new Date(Math.round(firedAt / 1000) * 1000).toISOString();
}

@Injectable()
export class ReportService {
  private readonly logger = new Logger(ReportService.name);

  constructor(
    private readonly redis: RedisTx,
    private readonly ticks: CronTicks,
    @Inject(INSTANCE_ID) private readonly instance: string,
  ) {}

  /** Fires on every instance; `report` lets only one of them run each tick. */
  @Cron(REPORT_CRON, { name: 'report' })
  async onSchedule(): Promise<void> {
    const run = await this.report();
    if (run) this.logger.log(`report ran ${JSON.stringify(run)}`);
    else {
      const tick = tickOf(Date.now());
      this.logger.log(`report skipped ${JSON.stringify({ tick, instance: this.instance })}`);
    }
  }

  /**
   * Each tick of the schedule runs once, on whichever instance claims it in
   * Redis first; the other firings resolve to undefined without running the
   * method. The count and the record of the run are written in one
   * transaction.
   */
  @OncePerTick({ job: 'report', cron: REPORT_CRON })
  @Transactional()
  async report(): Promise<ReportRun | undefined> {
    const { scheduledAt, fencingToken } = this.ticks.current()!;
    const run: ReportRun = {
      tick: new Date(scheduledAt).toISOString(),
      instance: this.instance,
      fencingToken,
      paidOrders: await this.redis.client.scard('orders:paid'),
    };
    this.redis.multi
      .incr('reports:count')
      .rpush('reports:runs', JSON.stringify(run))
      .ltrim('reports:runs', -1000, -1);
    return run;
  }
}
