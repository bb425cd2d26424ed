import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Locked, LockLostError, LockService } from '../../lib/index.js';
import {
  expectLockedDuring,
  expireLock,
  LockExpectationError,
  LockProbe,
  type RedisTxTestingOptions,
} from '../../lib/testing/index.js';
import { useRedisServer } from '../support/redis.js';
import { createTestingApp } from '../support/testing-app.js';

/** Stands for what a user's service writes to; the tests replace `save`. */
class Repository {
  save: (id: string) => unknown = () => undefined;
}

@Injectable()
class Orders {
  constructor(
    readonly repository: Repository,
    private readonly locks: LockService,
  ) {}

  @Locked((id: string) => `order:${id}`)
  async pay(id: string): Promise<void> {
    await this.repository.save(id);
  }

  async payUnlocked(id: string): Promise<void> {
    await this.repository.save(id);
  }

  /** Long work that stops when the lock is lost, and says why. */
  @Locked((id: string) => `order:${id}`)
  async settle(id: string, started: () => void): Promise<unknown> {
    const { signal } = this.locks.current(`order:${id}`)!;
    started();
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve));
    return signal.reason;
  }
}

function defineHelperTests(options: () => RedisTxTestingOptions): void {
  let app: INestApplication;
  let probe: LockProbe;
  beforeAll(async () => {
    app = await createTestingApp(options(), [Orders, Repository]);
  });
  afterAll(() => app?.close());
  beforeEach(() => {
    probe = LockProbe.start();
  });
  afterEach(() => probe.stop());
  const orders = () => app.get(Orders);

  it('expectLockedDuring passes when the code took the lock, and fails naming it when not', async () => {
    await expect(expectLockedDuring('order:1', () => orders().pay('1'))).resolves.toBeUndefined();
    const unlocked = expectLockedDuring('order:1', () => orders().payUnlocked('1'));
    await expect(unlocked).rejects.toThrow(LockExpectationError);
    await expect(unlocked).rejects.toThrow(/"order:1"/);
    await expect(expectLockedDuring('order:2', () => orders().pay('1'))).rejects.toThrow(
      /locks acquired meanwhile: "order:1"/,
    );
  });

  it('LockProbe.assertHeld checks, from inside, that the work ran under the lock', async () => {
    const seen: boolean[] = [];
    orders().repository.save = (id) => {
      seen.push(probe.isHeld(`order:${id}`));
      probe.assertHeld(`order:${id}`);
    };
    await orders().pay('3');
    await expect(orders().payUnlocked('3')).rejects.toThrow(LockExpectationError);
    expect(seen).toEqual([true, false]);
    expect(probe.isHeld('order:3')).toBe(false);
    expect(probe.wasAcquired('order:3')).toBe(true);
    orders().repository.save = () => undefined;
  });

  it('expireLock makes a running holder see LockLostError on its signal, and frees the lock', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const settling = orders().settle('4', started);
    await running;
    expect(probe.isHeld('order:4')).toBe(true);
    const held = app.get(LockService);
    await expireLock(held, 'order:4');
    const reason = await settling;
    expect(reason).toBeInstanceOf(LockLostError);
    expect(probe.isHeld('order:4')).toBe(false);
    expect(probe.losses.map((loss) => loss.keys)).toEqual([['order:4']]);
    const next = await held.tryAcquire('order:4');
    expect(next).not.toBeNull();
    await next!.release();
    await expect(expireLock(held, 'order:4')).rejects.toThrow(LockExpectationError);
  });
}

describe('testing helpers with the in-memory store', () => {
  defineHelperTests(() => ({ lockStore: 'in-memory' }));
});

describe('testing helpers with the Redis store', () => {
  const bed = useRedisServer();
  defineHelperTests(() => ({ redis: bed.server.url }));
});
