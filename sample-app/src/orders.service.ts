import { Injectable } from '@nestjs/common';
import { Locked, LockService, RedisTx, Transactional } from '../../lib/index.js';

@Injectable()
export class OrdersService {
  constructor(
    private readonly redis: RedisTx,
    private readonly locks: LockService,
  ) {}

  /**
   * One payment of an order at a time, across every instance: a second
   * request while the first runs gets 409 Conflict. The lock encloses the
   * transaction, and the fencing token is stored with the payment.
   */
  @Locked((orderId: string) => `order:${orderId}`, { ttlMs: 10_000, waitMs: 0 })
  @Transactional()
  async pay(orderId: string, amount: number): Promise<{ orderId: string; fencingToken: number }> {
    const fencingToken = this.locks.current()!.fencingToken;
    this.redis.multi
      .hset(`order:${orderId}`, { status: 'paid', amount, fencingToken })
      .sadd('orders:paid', orderId);
    return { orderId, fencingToken };
  }
}
