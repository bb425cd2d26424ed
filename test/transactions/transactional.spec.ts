import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import {
  NoActiveTransactionError,
  QueuedCommandAwaitedError,
  RedisTx,
  Transactional,
  TransactionPropagationError,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

class Refused extends Error {}

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

@Injectable()
class FollowService {
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async follow(a: string, b: string) {
    this.redis.multi.sadd(`u:${a}:follow`, b).sadd(`u:${b}:fans`, a);
  }

  @Transactional()
  async unfollow(a: string, b: string) {
    this.redis.multi.srem(`u:${a}:follow`, b).srem(`u:${b}:fans`, a);
  }

  @Transactional()
  async followThenFail(a: string, b: string) {
    this.redis.multi.sadd(`u:${a}:follow`, b).sadd(`u:${b}:fans`, a);
    throw new Refused('changed my mind');
  }

  @Transactional()
  async awaitQueued() {
    return await this.redis.multi.incr('counter');
  }

  /** Leaves work behind that runs after the method has returned. */
  @Transactional()
  async leaveStraggler(): Promise<{ later: Promise<unknown> }> {
    const multi = this.redis.multi;
    const later = Promise.resolve().then(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return { active: this.redis.active, error: captureError(() => multi.incr('late')) };
    });
    return { later };
  }

  @Transactional()
  async callExec() {
    await this.redis.multi.incr('counter').exec();
  }
}

/** Methods that call each other under every propagation. */
@Injectable()
class Ledger {
  readonly events: string[] = [];
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async outer(inner: 'required' | 'requires_new' | 'mandatory' | 'never') {
    this.redis.multi.rpush('log', 'outer');
    this.redis.afterCommit(() => this.events.push('outer committed'));
    await this[inner]();
    this.redis.multi.rpush('log', 'outer-end');
  }

  @Transactional({ propagation: 'required' })
  async required() {
    this.redis.multi.rpush('log', 'required');
    this.redis.afterCommit(() => this.events.push('required committed'));
  }

  @Transactional({ propagation: 'requires_new' })
  async requires_new() {
    this.redis.multi.rpush('log', 'requires_new');
    this.redis.afterCommit(() => this.events.push('requires_new committed'));
  }

  @Transactional({ propagation: 'mandatory' })
  async mandatory() {
    this.redis.multi.rpush('log', 'mandatory');
  }

  @Transactional({ propagation: 'never' })
  async never() {
    this.events.push('never ran');
  }

  @Transactional()
  async outerSurvivesInnerFailure() {
    this.redis.multi.rpush('log', 'outer');
    this.redis.afterRollback(() => this.events.push('outer rolled back'));
    await this.failingInner().catch(() => this.events.push('caught inner'));
    this.redis.multi.rpush('log', 'outer-end');
  }

  @Transactional()
  async failingInner() {
    this.redis.multi.rpush('log', 'inner');
    this.redis.afterCommit(() => this.events.push('inner committed'));
    this.redis.afterRollback(() => this.events.push('inner rolled back'));
    throw new Refused('inner failed');
  }

  @Transactional()
  async hooks(fail: boolean) {
    this.redis.multi.set('hooked', '1');
    this.redis.afterCommit(async (replies) => {
      await Promise.resolve();
      this.events.push(`commit 1 ${JSON.stringify(replies)}`);
    });
    this.redis.afterCommit(() => {
      this.events.push('commit 2');
      throw new Error('a failing hook');
    });
    this.redis.afterCommit(() => this.events.push('commit 3'));
    this.redis.afterRollback((error) => this.events.push(`rollback ${(error as Error).message}`));
    if (fail) throw new Refused('no');
  }
}

describe('@Transactional and RedisTx (plain MULTI/EXEC)', () => {
  const bed = useAppWithRedis({ providers: [FollowService, Ledger] });
  beforeEach(async () => {
    await bed.observer.config('RESETSTAT');
    bed.app.get(Ledger).events.length = 0;
  });

  const commandCalls = async (name: string): Promise<number> => {
    const stats = await bed.observer.info('commandstats');
    const match = new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats);
    return match ? Number(match[1]) : 0;
  };

  it('applies the follow example as one MULTI … EXEC that another connection never sees half of', async () => {
    const follows = bed.app.get(FollowService);
    let halves = 0;
    let reads = 0;
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const [[, following], [, fan]] = (await bed.observer
          .multi()
          .sismember('u:ann:follow', 'bob')
          .sismember('u:bob:fans', 'ann')
          .exec()) as [[null, number], [null, number]];
        reads++;
        if (following !== fan) halves++;
      }
    })();
    for (let round = 0; round < 200; round++) {
      await Promise.all([follows.follow('ann', 'bob'), follows.unfollow('ann', 'bob')]);
    }
    await follows.follow('ann', 'bob');
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(halves).toBe(0);
    expect(await bed.observer.smembers('u:ann:follow')).toEqual(['bob']);
    expect(await bed.observer.smembers('u:bob:fans')).toEqual(['ann']);
    expect(await commandCalls('exec')).toBe(401 + reads);
  });

  it('sends nothing when the method throws, and rethrows the error unchanged', async () => {
    const error = await bed.app
      .get(FollowService)
      .followThenFail('ann', 'bob')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Refused);
    expect((error as Error).message).toBe('changed my mind');
    expect(await bed.observer.exists('u:ann:follow', 'u:bob:fans')).toBe(0);
    expect(await commandCalls('multi')).toBe(0);
    expect(await commandCalls('sadd')).toBe(0);
  });

  it('fails loudly when a queued command is awaited or exec is called by hand', async () => {
    const follows = bed.app.get(FollowService);
    await expect(follows.awaitQueued()).rejects.toThrow(QueuedCommandAwaitedError);
    await expect(follows.awaitQueued()).rejects.toThrow(/RedisTx\.multi\.incr.*was awaited/);
    await expect(follows.callExec()).rejects.toThrow(QueuedCommandAwaitedError);
    expect(await bed.observer.exists('counter')).toBe(0);
  });

  it('refuses commands from a callback that outlived its transaction, instead of losing them', async () => {
    const { later } = await bed.app.get(FollowService).leaveStraggler();
    const { active, error } = (await later) as { active: boolean; error: unknown };
    expect(active).toBe(false);
    expect(error).toBeInstanceOf(NoActiveTransactionError);
    expect((error as Error).message).toMatch(/after its transaction's method had returned/);
    expect(await bed.observer.exists('late')).toBe(0);
  });

  it('refuses RedisTx.multi and hooks outside a transaction', () => {
    const tx = bed.app.get(RedisTx);
    expect(tx.active).toBe(false);
    expect(() => tx.multi).toThrow(NoActiveTransactionError);
    expect(() => tx.afterCommit(() => undefined)).toThrow(NoActiveTransactionError);
    expect(() => tx.afterRollback(() => undefined)).toThrow(NoActiveTransactionError);
  });

  it('RedisTx.run returns the value, the EXEC replies and the attempt count', async () => {
    const tx = bed.app.get(RedisTx);
    const result = await tx.run(async () => {
      expect(tx.active).toBe(true);
      tx.multi.set('a', '1').incr('a').get('a');
      return 'done';
    });
    expect(result).toEqual({ value: 'done', replies: ['OK', 2, '2'], attempts: 1 });
    expect(tx.active).toBe(false);
  });

  it('sends no MULTI at all when nothing was queued', async () => {
    const result = await bed.app.get(RedisTx).run(() => 7);
    expect(result).toEqual({ value: 7, replies: [], attempts: 1 });
    expect(await commandCalls('multi')).toBe(0);
  });

  it("'required' joins the outer transaction: one EXEC, in queue order", async () => {
    const ledger = bed.app.get(Ledger);
    await ledger.outer('required');
    expect(await bed.observer.lrange('log', 0, -1)).toEqual(['outer', 'required', 'outer-end']);
    expect(await commandCalls('exec')).toBe(1);
    expect(ledger.events).toEqual(['outer committed', 'required committed']);
  });

  it("'requires_new' commits on its own, before the outer one", async () => {
    const ledger = bed.app.get(Ledger);
    await ledger.outer('requires_new');
    expect(await bed.observer.lrange('log', 0, -1)).toEqual(['requires_new', 'outer', 'outer-end']);
    expect(await commandCalls('exec')).toBe(2);
    expect(ledger.events).toEqual(['requires_new committed', 'outer committed']);
  });

  it("'mandatory' joins inside and throws outside a transaction", async () => {
    const ledger = bed.app.get(Ledger);
    await ledger.outer('mandatory');
    expect(await bed.observer.lrange('log', 0, -1)).toEqual(['outer', 'mandatory', 'outer-end']);
    await expect(ledger.mandatory()).rejects.toThrow(NoActiveTransactionError);
    await expect(ledger.mandatory()).rejects.toThrow(/Ledger\.mandatory.*'mandatory'/);
  });

  it("'never' runs outside and throws inside a transaction, which then applies nothing", async () => {
    const ledger = bed.app.get(Ledger);
    await ledger.never();
    expect(ledger.events).toEqual(['never ran']);
    await expect(ledger.outer('never')).rejects.toThrow(TransactionPropagationError);
    expect(await bed.observer.exists('log')).toBe(0);
  });

  it('drops only what a failed joined method queued when the outer one catches its error', async () => {
    const ledger = bed.app.get(Ledger);
    await ledger.outerSurvivesInnerFailure();
    expect(await bed.observer.lrange('log', 0, -1)).toEqual(['outer', 'outer-end']);
    expect(ledger.events).toEqual(['caught inner', 'inner rolled back']);
  });

  it('runs commit hooks once, in order, after EXEC, with the replies; a failing hook changes nothing', async () => {
    const ledger = bed.app.get(Ledger);
    await expect(ledger.hooks(false)).resolves.toBeUndefined();
    expect(ledger.events).toEqual(['commit 1 ["OK"]', 'commit 2', 'commit 3']);
    expect(await bed.observer.get('hooked')).toBe('1');
  });

  it('runs rollback hooks, not commit hooks, when the method throws', async () => {
    const ledger = bed.app.get(Ledger);
    await expect(ledger.hooks(true)).rejects.toThrow(Refused);
    expect(ledger.events).toEqual(['rollback no']);
    expect(await bed.observer.exists('hooked')).toBe(0);
  });
});
