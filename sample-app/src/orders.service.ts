import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictException, Inject, Injectable } from '@nestjs/common';
import { Locked, LockService, RedisTx, Transactional } from '../../lib/index.js';
import { isStaleHolder } from './fencing.scripts.js';
import { INSTANCE_ID } from './instance-id.js';

export interface Payment {
  orderId: string;
  amount: number;
  /** Increases with every lock taken on the order, on any instance. */
  fencingToken: number;
  /** The instance that took the payment. */
  instance: string;
}

/** An order as `GET /orders/:id` shows it: numbers are numbers, as in {@link Payment}. */
export interface Order {
  status: 'paying' | 'paid' | 'unpaid';
  /** The instance that took the payment, or is taking it. */
  by: string;
  /** Once paid. */
  amount?: number;
  /** Once paid: the token of the lock it was paid under. */
  fencingToken?: number;
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
   * The order is a fenced resource (see fencing.scripts.ts): it is read and
   * written with the lock's fencing token, so an instance paused past its
   * lease (a long GC, a frozen VM) that wakes up between its read and its
   * write is refused once a newer holder has read the order, and cannot pay
   * it a second time. Refusals answer 409 like a busy lock.
   *
   * `providerMs` stands in for a slow payment provider (try two requests at
   * once by hand); it stops early if the lock is lost.
   */
  @Locked((orderId: string) => `order:${orderId}`, { ttlMs: 10_000, waitMs: 0 })
  @Transactional()
  async pay(orderId: string, amount: number, providerMs = 0): Promise<Payment> {
    const key = `order:${orderId}`;
    const lock = this.locks.current(key)!;
    const token = lock.fencingToken;
    try {
      if ((await this.redis.client.readFenced(key, token, 'status')) === 'paid') {
        throw new ConflictException(`order ${orderId} is already paid`);
      }
      // Written at once, outside the transaction, so that anyone can see a
      // payment in progress; put back if the payment does not go through.
      await this.redis.client.writeFenced(key, token, 'status', 'paying', 'by', this.instance);
    } catch (error) {
      throw isStaleHolder(error) ? new ConflictException(staleMessage(orderId)) : error;
    }
    this.redis.afterRollback(async () => {
      // Refused when a newer holder has read the order since: it is theirs now.
      await this.redis.client
        .writeFenced(key, token, 'status', 'unpaid')
        .catch((error: unknown) => {
          if (!isStaleHolder(error)) throw error;
        });
    });
    if (providerMs > 0) await sleep(providerMs, undefined, { signal: lock.signal });

    const payment: Payment = { orderId, amount, fencingToken: token, instance: this.instance };
    // A refusal here fails EXEC with TransactionExecError. Redis has no
    // rollback, so the SADD beside it still applies: only a holder paused
    // past its lease gets here, and the newer holder is paying the order.
    this.redis.multi
      .writeFenced(
        key,
        token,
        'status',
        'paid',
        'amount',
        amount,
        'fencingToken',
        token,
        'by',
        this.instance,
      )
      .sadd('orders:paid', orderId);
    return payment;
  }

  /**
   * The order, or undefined if no payment of it was ever tried. Redis keeps
   * every field as a string; the numbers are turned back into numbers here.
   */
  async order(orderId: string): Promise<Order | undefined> {
    const { status, by, amount, fencingToken } = await this.redis.client.hgetall(
      `order:${orderId}`,
    );
    if (!status) return undefined;
    return {
      status: status as Order['status'],
      by: by!,
      ...(amount !== undefined && { amount: Number(amount) }),
      ...(fencingToken !== undefined && { fencingToken: Number(fencingToken) }),
    };
  }
}

function staleMessage(orderId: string): string {
  return `order ${orderId} was taken over by a newer payment while this one was paused`;
}
