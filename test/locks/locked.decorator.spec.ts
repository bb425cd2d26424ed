import 'reflect-metadata';
import { Controller, Injectable, Param, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  InvalidLockKeyError,
  Locked,
  LockNotAcquiredError,
  LockService,
  RedisTx,
  Transactional,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { createTestApp } from '../support/nest-app.js';

@Injectable()
class Orders {
  runs = 0;
  seenDuringCommit: boolean[] = [];
  constructor(
    readonly locks: LockService,
    readonly redis: RedisTx,
  ) {}

  @Locked((id: string) => `order:${id}`, { waitMs: 0 })
  async pay(id: string, whileHeld?: () => Promise<void>) {
    this.runs++;
    await whileHeld?.();
    return this.locks.current(`order:${id}`)?.fencingToken;
  }

  @Locked('jobs:sync', { waitMs: 0, onBusy: 'skip' })
  async sync(whileHeld?: () => Promise<void>) {
    this.runs++;
    await whileHeld?.();
    return 'ran';
  }

  @Locked((a: string, b: string) => [`acct:${a}`, `acct:${b}`])
  async move(_a: string, _b: string) {
    return [...(this.locks.current()?.keys ?? [])];
  }

  @Locked((o: { id?: string }) => `order:${o.id}`)
  async sloppy(_o: { id?: string }) {}

  /** Lock written above the transaction. */
  @Locked('ledger')
  @Transactional({ watch: ['ledger:total'], retries: 3 })
  async lockOutside() {
    this.redis.multi.incr('ledger:total');
    this.redis.afterCommit(async () =>
      this.seenDuringCommit.push(await this.locks.isLocked('ledger')),
    );
  }

  /** Lock written below the transaction: it must still be taken first and released last. */
  @Transactional({ watch: ['ledger:total'], retries: 3 })
  @Locked('ledger')
  async lockInside() {
    this.redis.multi.incr('ledger:total');
    this.redis.afterCommit(async () =>
      this.seenDuringCommit.push(await this.locks.isLocked('ledger')),
    );
  }
}

@Controller('orders')
class OrdersController {
  constructor(private readonly locks: LockService) {}

  @Post(':id/pay')
  @Locked((id: string) => `order:${id}`, { waitMs: 0 })
  async pay(@Param('id') id: string) {
    return { paid: id, fencingToken: this.locks.current()?.fencingToken };
  }
}

describe('@Locked', () => {
  const bed = useAppWithRedis({ providers: [Orders], controllers: [OrdersController] });
  const orders = () => bed.app.get(Orders);
  // Another instance of the app: its calls are not part of this call chain, so they cannot re-enter its locks.
  let elsewhere: INestApplication;
  beforeAll(async () => {
    elsewhere = await createTestApp({
      options: { connection: bed.server.url },
      providers: [Orders],
    });
  });
  bed.beforeStop(() => elsewhere?.close());
  beforeEach(() => {
    for (const o of [orders(), elsewhere.get(Orders)]) {
      o.runs = 0;
      o.seenDuringCommit = [];
    }
  });

  it('locks on a key computed from the arguments and exposes the fencing token to the method', async () => {
    let inner: Promise<unknown> | undefined;
    const token = await orders().pay('42', async () => {
      expect(await orders().locks.isLocked('order:42')).toBe(true);
      inner = elsewhere
        .get(Orders)
        .pay('42')
        .catch((e: unknown) => e);
      expect(await inner).toBeInstanceOf(LockNotAcquiredError);
      // Another order is not held.
      expect(await orders().pay('43')).toEqual(expect.any(Number));
    });
    expect(token).toEqual(expect.any(Number));
    expect(await orders().locks.isLocked('order:42')).toBe(false);
    expect(orders().runs).toBe(2);
    expect(elsewhere.get(Orders).runs).toBe(0);
  });

  it("onBusy: 'skip' resolves to undefined without running the method", async () => {
    const result = await orders().sync(async () => {
      expect(await elsewhere.get(Orders).sync()).toBeUndefined();
    });
    expect(result).toBe('ran');
    expect(orders().runs).toBe(1);
    expect(elsewhere.get(Orders).runs).toBe(0);
  });

  it('takes every key a key function returns', async () => {
    expect(await orders().move('b', 'a')).toEqual(['acct:a', 'acct:b']);
  });

  it('rejects a key that resolved to "undefined" with InvalidLockKeyError', async () => {
    await expect(orders().sloppy({})).rejects.toThrow(InvalidLockKeyError);
    expect(() => {
      class Bad {
        @Locked('')
        async m() {}
      }
      return Bad;
    }).toThrow(InvalidLockKeyError);
  });

  it.each(['lockOutside', 'lockInside'] as const)(
    'with @Transactional (%s), holds the lock from before the transaction until after its EXEC',
    async (method) => {
      await orders()[method]();
      expect(orders().seenDuringCommit).toEqual([true]);
      expect(await orders().locks.isLocked('ledger')).toBe(false);
      expect(await bed.observer.get('ledger:total')).toBe('1');
    },
  );

  it('answers 409 Conflict with a clear body when a handler’s lock is busy', async () => {
    const ok = await request(bed.app.getHttpServer()).post('/orders/7/pay');
    expect(ok.status).toBe(201);
    expect(ok.body).toEqual({ paid: '7', fencingToken: expect.any(Number) });

    const held = await orders().locks.acquire('order:7');
    try {
      const busy = await request(bed.app.getHttpServer()).post('/orders/7/pay');
      expect(busy.status).toBe(409);
      // A stable code and a message for clients; the lock's name and the advice are for the logs.
      expect(busy.body).toEqual({
        statusCode: 409,
        code: 'LOCK_BUSY',
        message: 'The resource is busy; try again.',
      });
    } finally {
      await held.release();
    }
  });
});
