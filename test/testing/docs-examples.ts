// The snippets of docs/testing.md, type-checked against the API (not run:
// the specs beside this file test the same things). Keep the two in step.
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Locked, LockLostError, LockService } from '../../lib/index.js';
import {
  expectLockedDuring,
  expireLock,
  LockProbe,
  RedisTxTestingModule,
  TestRedis,
} from '../../lib/testing/index.js';

class Repository {
  async save(id: string): Promise<string> {
    return id;
  }
}

@Injectable()
class OrdersService {
  constructor(private readonly repository: Repository) {}

  @Locked((id: string) => `order:${id}`)
  async pay(id: string): Promise<void> {
    await this.repository.save(id);
  }
}

@Injectable()
class Importer {
  constructor(private readonly locks: LockService) {}

  @Locked('import')
  async run(): Promise<void> {
    const { signal } = this.locks.current('import')!;
    await new Promise((resolve) => signal.addEventListener('abort', resolve));
    throw signal.reason;
  }
}

@Module({ providers: [OrdersService, Repository] })
class OrdersModule {}

export async function integration(): Promise<void> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxTestingModule.forRoot({ locks: { ttlMs: 5_000 } }), OrdersModule],
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication();
  await app.init();
  await app.get(OrdersService).pay('42');
  const { url }: { url: string | undefined } = app.get(TestRedis);
  void url;
  await app.close();

  RedisTxTestingModule.forRoot({ redis: 'redis://ci-redis:6379', flushDb: false, db: 2 });
  RedisTxTestingModule.forRoot({ lockStore: 'in-memory', redis: 'throwaway' });
  RedisTxTestingModule.forRoot({ server: { command: '/usr/local/bin/redis-server' } });
}

export async function unit(): Promise<void> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxTestingModule.forRoot({ lockStore: 'in-memory' })],
    providers: [OrdersService, Repository, Importer],
  }).compile();
  const app = moduleRef.createNestApplication();
  await app.init();
  const orders = app.get(OrdersService);
  const repository = app.get(Repository);

  await expectLockedDuring('order:42', () => orders.pay('42'));

  const probe = LockProbe.start();
  jest.spyOn(repository, 'save').mockImplementation(async (order) => {
    probe.assertHeld('order:42');
    return order;
  });
  await orders.pay('42');
  probe.stop();

  const running = app.get(Importer).run();
  await expireLock(app.get(LockService), 'import');
  await expect(running).rejects.toBeInstanceOf(LockLostError);

  const lock = await app.get(LockService).acquire('order:42');
  await expireLock(lock);
  expect(lock.signal.reason).toBeInstanceOf(LockLostError);
  expect(await lock.release()).toBe(false);
  await app.close();
}
