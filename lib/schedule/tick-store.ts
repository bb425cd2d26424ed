import type { RedisConnections } from '../connection/redis-connections.js';
import type { TxConnection } from '../connection/tx-connection.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { messages } from '../redis-tx.messages.js';
import type { CronRun } from './cron-ticks.options.js';
import { tickKeys, type TickKeys } from './tick-keys.js';
import { tickScripts } from './tick.scripts.js';

/** What a claim asks for. */
export interface TickClaim {
  tick: number;
  instance: string;
  fencingToken: number;
  startedAt: number;
  trigger: CronRun['trigger'];
  missedTicks: number;
}

/** How a run ended. */
export interface TickEnd {
  tick: number;
  endedAt: number;
  outcome: 'ok' | 'error';
  errorName?: string;
  missedTicks: number;
}

/**
 * A job's ticks and run records in Redis. Writes go on the module's lock
 * connection, which never resends a command whose reply was lost: a claim
 * sent twice could not run twice (the second finds its tick taken), but a
 * lost reply must not be mistaken for a refusal either, so it fails typed.
 */
export class TickStore {
  constructor(
    private readonly connections: RedisConnections,
    private readonly keyPrefix: string,
    private readonly readyTimeoutMs: number,
  ) {}

  keys(job: string): TickKeys {
    return tickKeys(this.keyPrefix, job);
  }

  /** The last tick of `job` claimed by any instance, if any. A read: any failure means nothing was claimed. */
  async lastClaimed(job: string): Promise<number | undefined> {
    try {
      const connection = await this.ready(job);
      const tick = await connection.redis.hget(this.keys(job).claimed, 'tick');
      return tick === null ? undefined : Number(tick);
    } catch (cause) {
      throw new RedisTxError(messages.cronTickUnreachable(job, (cause as Error)?.message), {
        cause,
      });
    }
  }

  /** Claims the tick; the tick it replaced (undefined if none) when it did, false when the tick was taken. */
  async claim(job: string, claim: TickClaim): Promise<{ previous: number | undefined } | false> {
    const keys = this.keys(job);
    const connection = await this.ready(job);
    const reply = (await connection.unlessLost(
      connection.redis.eval(
        tickScripts.claim,
        2,
        keys.claimed,
        keys.lastRun,
        claim.tick,
        claim.instance,
        claim.fencingToken,
        claim.startedAt,
        claim.trigger,
        claim.missedTicks,
      ),
      (cause) => new RedisTxError(messages.cronTickClaimUnknown(job), { cause }),
    )) as [number, number];
    if (reply[0] !== 1) return false;
    return { previous: reply[1] === -1 ? undefined : reply[1] };
  }

  /** Completes the run's record, unless a later run has replaced it. */
  async finish(job: string, end: TickEnd): Promise<void> {
    const connection = await this.ready(job);
    await connection.redis.eval(
      tickScripts.finish,
      1,
      this.keys(job).lastRun,
      end.tick,
      end.endedAt,
      end.outcome,
      end.errorName ?? '',
      end.missedTicks,
    );
  }

  async lastRun(job: string): Promise<CronRun | undefined> {
    const fields = await this.connections.shared.hgetall(this.keys(job).lastRun);
    if (fields.scheduledAt === undefined) return undefined;
    const run: CronRun = {
      job,
      instance: fields.instance ?? '',
      fencingToken: Number(fields.fencingToken),
      scheduledAt: Number(fields.scheduledAt),
      startedAt: Number(fields.startedAt),
      outcome: fields.outcome as CronRun['outcome'],
      missedTicks: Number(fields.missedTicks ?? 0),
      trigger: fields.trigger as CronRun['trigger'],
    };
    if (fields.endedAt !== undefined) run.endedAt = Number(fields.endedAt);
    if (fields.errorName !== undefined) run.errorName = fields.errorName;
    return run;
  }

  private async ready(job: string): Promise<TxConnection> {
    const connection = this.connections.locks;
    await connection.whenReady(this.readyTimeoutMs, `cron job "${job}"`);
    return connection;
  }
}
