import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictException, Inject, Injectable } from '@nestjs/common';
import { Locked, LockService, RedisTx, Transactional } from '../../lib/index.js';
import { INSTANCE_ID } from './instance-id.js';

export interface Payment {
  orderId: string;
  amount: number;
  /** Increases with every lock taken on the order, on any instance. */
  fencingToken: number;
  /** The instance that took the payment. */
  instance: string;
}

@Injectable()
export class OrdersService {
  constructor(
    private readonly redis: RedisTx,
    private readonly locks: LockService,
    @Inject(INSTANCE_ID) private readonly instance: string,
  ) {}

  /**
   * One payment of an order at a time, across every instance: a request that
   * finds the order's lock taken answers 409 Conflict at once (`waitMs: 0`),
   * and the "already paid" check cannot race with another payment, since
   * both happen under the lock. The lock encloses the transaction, so the
   * payment is committed before the next one can look.
   *
   * `providerMs` stands in for a slow payment provider (try two requests at
   * once by hand); it stops early if the lock is lost.
   */
  @Locked((orderId: string) => `order:${orderId}`, { ttlMs: 10_000, waitMs: 0 })
  @Transactional()
  async pay(orderId: string, amount: number, providerMs = 0): Promise<Payment> {
    const key = `order:${orderId}`;
    const lock = this.locks.current(key)!;
    if ((await this.redis.client.hget(key, 'status')) === 'paid') {
      throw new ConflictException(`order ${orderId} is already paid`);
    }
    // Written at once, outside the transaction, so that anyone can see a
    // payment in progress; put back if the payment does not go through.
    await this.redis.client.hset(key, { status: 'paying', by: this.instance });
    this.redis.afterRollback(async () => {
      await this.redis.client.hset(key, 'status', 'unpaid');
    });
    if (providerMs > 0) await sleep(providerMs, undefined, { signal: lock.signal });

    const payment: Payment = {
      orderId,
      amount,
      fencingToken: lock.fencingToken,
      instance: this.instance,
    };
    this.redis.multi
      .hset(key, { status: 'paid', amount, fencingToken: payment.fencingToken, by: this.instance })
      .sadd('orders:paid', orderId);
    return payment;
  }

  async order(orderId: string): Promise<Record<string, string>> {
    return this.redis.client.hgetall(`order:${orderId}`);
  }
}
