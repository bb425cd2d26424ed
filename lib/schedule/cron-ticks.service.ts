import { AsyncLocalStorage } from 'node:async_hooks';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RedisConnections } from '../connection/redis-connections.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { LockService } from '../locks/lock.service.js';
import { settleWithin } from '../locks/settle-within.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { planCronJob, type CronJobPlan } from './cron-job-plan.js';
import { CRON_TICKS_OPTIONS } from './cron-ticks.constants.js';
import type { CronRun } from './cron-ticks.options.js';
import type { ResolvedCronTicksOptions } from './cron-ticks.options-validator.js';
import { jobLockName } from './tick-keys.js';
import { bindTickRunner, declaredTickMethods } from './tick-methods.js';
import { TickStore } from './tick-store.js';

/** The run of a `@OncePerTick()` job that the current call chain is part of. */
export type CronTickRun = Pick<
  CronRun,
  'job' | 'scheduledAt' | 'fencingToken' | 'missedTicks' | 'trigger'
>;

/**
 * Missed ticks are counted up to this many: each one costs `cron` a date
 * computation of some 0.1 ms, and after a long outage of a job that runs
 * every second, counting them all would stall the event loop.
 */
const MISSED_TICKS_COUNTED = 100;

/** An error's name is kept short in the record: it is a class name, not a place for data. */
const ERROR_NAME_LENGTH = 100;

/**
 * Claims the ticks of `@OncePerTick()` jobs in Redis and records their runs.
 * Finds the decorated methods at bootstrap (refusing a method with no
 * schedule or no job name there, typed), and tells the last run of a job.
 */
@Injectable()
export class CronTicks implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('CronTicks');
  private readonly store: TickStore;
  private readonly running = new AsyncLocalStorage<CronTickRun>();
  /** Set around the start-up run of a `misfire: 'run-once'` job. */
  private readonly catchingUp = new AsyncLocalStorage<true>();
  private readonly jobs: { instance: object; method: string | symbol; plan: CronJobPlan }[] = [];
  private readonly catchUps = new Set<Promise<unknown>>();
  private readonly shutdownTimeoutMs: number;

  /** Created by Nest's dependency injection: inject the class, never construct it. @internal */
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly locks: LockService,
    connections: RedisConnections,
    @Inject(REDIS_TX_OPTIONS) redisTx: ResolvedRedisTxOptions,
    @Inject(CRON_TICKS_OPTIONS) private readonly options: ResolvedCronTicksOptions,
  ) {
    this.store = new TickStore(connections, options.keyPrefix, redisTx.transactions.readyTimeoutMs);
    this.shutdownTimeoutMs = redisTx.shutdownTimeoutMs;
  }

  /** The last run of `job` by any instance (possibly still running), or undefined if it never ran. */
  async lastRun(job: string): Promise<CronRun | undefined> {
    if (typeof job !== 'string' || job === '') {
      throw new InvalidOptionsError(
        'job',
        messages.optionInvalid('job', 'a non-empty string', job, 'CronTicks.lastRun()'),
      );
    }
    return this.store.lastRun(job);
  }

  /** Inside a `@OncePerTick()` method (and what it calls): the tick it runs for. */
  current(): CronTickRun | undefined {
    return this.running.getStore();
  }

  async onModuleInit(): Promise<void> {
    const seen = new Set<object>();
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      // A request-scoped class is reported by RedisTxModule: its methods cannot be bound.
      if (!wrapper.isDependencyTreeStatic()) continue;
      const instance: unknown = wrapper.instance;
      if (typeof instance !== 'object' || instance === null || seen.has(instance)) continue;
      seen.add(instance);
      for (const [method, options] of declaredTickMethods(instance)) {
        const label = `@OncePerTick() on ${instance.constructor.name}.${String(method)}`;
        const fn = (instance as Record<string | symbol, unknown>)[method];
        const plan = await planCronJob(
          fn as (...args: never[]) => unknown,
          options,
          label,
          this.options.clock(),
        );
        bindTickRunner(instance, method, (next) => this.runTick(plan, next));
        this.jobs.push({ instance, method, plan });
      }
    }
  }

  /** Starts the catch-up of each `misfire: 'run-once'` job, without holding up the start. */
  onApplicationBootstrap(): void {
    for (const { instance, method, plan } of this.jobs) {
      if (plan.misfire !== 'run-once') continue;
      const run = this.catchingUp
        .run(true, async () => {
          const fn = (instance as Record<string | symbol, unknown>)[method] as () => unknown;
          await fn.call(instance);
        })
        .catch((error: unknown) => {
          // Where @nestjs/schedule would log a failed tick, say it here.
          this.logger.error(`${plan.label}: the catch-up run failed`, (error as Error)?.stack);
        })
        .finally(() => this.catchUps.delete(run));
      this.catchUps.add(run);
    }
  }

  /** Lets a catch-up under way finish, for at most `shutdownTimeoutMs`, as running lock holders are. */
  async beforeApplicationShutdown(): Promise<void> {
    await settleWithin([...this.catchUps], this.shutdownTimeoutMs);
  }

  /**
   * One firing: the tick is the latest scheduled time at or before this
   * instance's clock. A tick already claimed (a late clock, a second firing)
   * is refused by a read, without touching the job's lock, so that it never
   * keeps a firing that may claim from the lock. Otherwise, under the job's
   * lock (a run of an earlier tick still under way makes this firing skip),
   * the tick is claimed, atomically and again only if later than the last
   * claimed one, and the method runs only when that claim succeeds.
   */
  private async runTick(plan: CronJobPlan, next: () => Promise<unknown>): Promise<unknown> {
    const trigger = this.catchingUp.getStore() ? 'catch-up' : 'tick';
    const tick = plan.schedule.latestAtOrBefore(this.options.clock());
    const last = await this.store.lastClaimed(plan.job);
    if (last !== undefined && tick <= last) return undefined;
    // With no tick ever claimed, nothing was missed.
    if (trigger === 'catch-up' && last === undefined) return undefined;
    let entered = false;
    try {
      return await this.locks.using(
        jobLockName(plan.job),
        (lock) => {
          entered = true;
          return this.claimAndRun(plan, { tick, last, trigger }, lock.fencingToken, next);
        },
        plan.lockTtlMs === undefined ? { waitMs: 0 } : { waitMs: 0, ttlMs: plan.lockTtlMs },
      );
    } catch (error) {
      if (!entered && heldElsewhere(error)) return undefined;
      throw error;
    }
  }

  private async claimAndRun(
    plan: CronJobPlan,
    firing: { tick: number; last: number | undefined; trigger: CronRun['trigger'] },
    fencingToken: number,
    next: () => Promise<unknown>,
  ): Promise<unknown> {
    const { job } = plan;
    const { tick, last, trigger } = firing;
    const missed = missedTicks(plan, last, tick);
    const claimed = await this.store.claim(job, {
      tick,
      instance: this.options.instanceId,
      fencingToken,
      startedAt: this.options.clock(),
      trigger,
      missedTicks: missed,
    });
    if (!claimed) return undefined;
    // Another instance may have claimed an earlier tick since the read.
    const missedNow =
      claimed.previous === last ? missed : missedTicks(plan, claimed.previous, tick);
    const run: CronTickRun = {
      job,
      scheduledAt: tick,
      fencingToken,
      missedTicks: missedNow,
      trigger,
    };
    let outcome: 'ok' | 'error' = 'ok';
    let errorName: string | undefined;
    try {
      // Not a catch-up any more for what the method itself calls.
      return await this.running.run(run, () => this.catchingUp.exit(next));
    } catch (error) {
      outcome = 'error';
      errorName = nameOf(error);
      throw error;
    } finally {
      await this.store
        .finish(job, {
          tick,
          endedAt: this.options.clock(),
          outcome,
          errorName,
          missedTicks: missedNow,
        })
        .catch((error: unknown) => {
          this.logger.warn(
            `${plan.label}: the end of the run of ${new Date(tick).toISOString()} could not be recorded: ${(error as Error)?.message}`,
          );
        });
    }
  }
}

function missedTicks(plan: CronJobPlan, last: number | undefined, tick: number): number {
  return last === undefined ? 0 : plan.schedule.ticksBetween(last, tick, MISSED_TICKS_COUNTED);
}

/** A refusal because the job's previous run still holds its lock. */
function heldElsewhere(error: unknown): boolean {
  return (
    error instanceof LockNotAcquiredError && (error.reason === 'busy' || error.reason === 'timeout')
  );
}

/** The error's class name only: its message may carry data that has no place in Redis. */
function nameOf(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  return name.slice(0, ERROR_NAME_LENGTH);
}
