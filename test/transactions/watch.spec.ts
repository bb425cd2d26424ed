import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  RedisTx,
  Transactional,
  TransactionConflictError,
  TransactionPropagationError,
  type TransactionRetryEvent,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

class InsufficientFunds extends Error {}

@Injectable()
class Bank {
  attempts = 0;
  constructor(readonly redis: RedisTx) {}

  @Transactional({
    watch: (from: string, to: string) => [`acct:${from}`, `acct:${to}`],
    retries: 1000,
  })
  async transfer(from: string, to: string, amount: number) {
    const [a] = await this.redis.client.mget(`acct:${from}`);
    if (Number(a) < amount) throw new InsufficientFunds();
    this.redis.multi.decrby(`acct:${from}`, amount).incrby(`acct:${to}`, amount);
  }

  /** Changes its own watched key from another connection, so every attempt conflicts. */
  @Transactional({ watch: ['hot'], retries: 2 })
  async alwaysConflicts(other: Redis) {
    this.attempts++;
    await other.incr('hot');
    this.redis.multi.set('never', '1');
  }

  /** Loses its connection between WATCH and EXEC on the first attempt only. */
  @Transactional({ watch: ['k'], retries: 3 })
  async reconnectOnce(killer: Redis) {
    this.attempts++;
    if (this.attempts === 1) {
      const id = await this.redis.client.client('ID');
      const closed = once(this.redis.client, 'close');
      await killer.client('KILL', 'ID', String(id));
      await closed;
    }
    this.redis.multi.incr('k');
  }

  @Transactional({ watch: ['w'] })
  async whichConnection() {
    return this.redis.client;
  }

  @Transactional()
  async plainOuterWithWatchingInner() {
    await this.watchingInner();
  }

  @Transactional({ watch: ['x'] })
  async watchingInner() {
    this.redis.multi.set('x', '1');
  }
}

describe('WATCH transactions', () => {
  const bed = useAppWithRedis({ providers: [Bank] });
  beforeEach(async () => {
    bed.app.get(Bank).attempts = 0;
  });

  it('16 concurrent transfers between 10 accounts keep the total exactly constant', async () => {
    const accounts = Array.from({ length: 10 }, (_, i) => `a${i}`);
    await bed.observer.mset(Object.fromEntries(accounts.map((a) => [`acct:${a}`, '100'])));
    const retries: TransactionRetryEvent[] = [];
    const onRetry = (event: unknown) => retries.push(event as TransactionRetryEvent);
    subscribe(channelNames.transactionRetry, onRetry);
    const bank = bed.app.get(Bank);
    let refused = 0;
    try {
      await Promise.all(
        Array.from({ length: 16 }, async (_, worker) => {
          for (let i = 0; i < 25; i++) {
            const from = accounts[(worker + i) % 10]!;
            const to = accounts[(worker * 3 + i + 1) % 10]!;
            if (from === to) continue;
            await bank.transfer(from, to, 1 + ((worker + i) % 7)).catch((e: unknown) => {
              if (!(e instanceof InsufficientFunds)) throw e;
              refused++;
            });
          }
        }),
      );
    } finally {
      unsubscribe(channelNames.transactionRetry, onRetry);
    }
    const balances = await bed.observer.mget(accounts.map((a) => `acct:${a}`));
    expect(balances.reduce((sum, b) => sum + Number(b), 0)).toBe(1000);
    expect(balances.every((b) => Number(b) >= 0)).toBe(true);
    // Real contention happened: some attempts conflicted and were re-run.
    expect(retries.length).toBeGreaterThan(0);
    expect(refused).toBeGreaterThanOrEqual(0);
  });

  it('sends UNWATCH only when no EXEC ran (EXEC drops the WATCH itself)', async () => {
    const unwatchCalls = async () =>
      Number(/cmdstat_unwatch:calls=(\d+)/.exec(await bed.observer.info('commandstats'))?.[1] ?? 0);
    await bed.observer.mset({ 'acct:p': '5', 'acct:q': '0' });
    await bed.observer.config('RESETSTAT');
    await bed.app.get(Bank).transfer('p', 'q', 1);
    expect(await unwatchCalls()).toBe(0);
    await expect(bed.app.get(Bank).transfer('q', 'p', 9)).rejects.toThrow(InsufficientFunds);
    expect(await unwatchCalls()).toBe(1);
  });

  it('refuses to overdraw: the method throws and nothing is applied', async () => {
    await bed.observer.mset({ 'acct:x': '5', 'acct:y': '0' });
    await expect(bed.app.get(Bank).transfer('x', 'y', 6)).rejects.toThrow(InsufficientFunds);
    expect(await bed.observer.mget('acct:x', 'acct:y')).toEqual(['5', '0']);
  });

  it('gives TransactionConflictError (409 over HTTP) after the retries run out, applying nothing', async () => {
    const other = new Redis(bed.server.url);
    try {
      const error = await bed.app
        .get(Bank)
        .alwaysConflicts(other)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionConflictError);
      expect((error as TransactionConflictError).attempts).toBe(3);
      expect((error as { statusCode?: number }).statusCode).toBe(409);
      expect(bed.app.get(Bank).attempts).toBe(3);
      expect(await bed.observer.exists('never')).toBe(0);
    } finally {
      await other.quit();
    }
  });

  it('counts a reconnect between WATCH and EXEC as a conflict and re-runs the method', async () => {
    const killer = new Redis(bed.server.url);
    try {
      await bed.app.get(Bank).reconnectOnce(killer);
    } finally {
      await killer.quit();
    }
    expect(bed.app.get(Bank).attempts).toBe(2);
    expect(await bed.observer.get('k')).toBe('1');
  });

  it('runs on an isolated connection, never on the shared one', async () => {
    const bank = bed.app.get(Bank);
    const shared = bed.app.get(RedisTx).client;
    const inside = await bank.whichConnection();
    expect(inside).not.toBe(shared);
    const [first, second] = await Promise.all([bank.whichConnection(), bank.whichConnection()]);
    expect(first).not.toBe(second);
  });

  it('refuses to add a WATCH to a transaction that has no WATCH connection', async () => {
    await expect(bed.app.get(Bank).plainOuterWithWatchingInner()).rejects.toThrow(
      TransactionPropagationError,
    );
    expect(await bed.observer.exists('x')).toBe(0);
  });
});
