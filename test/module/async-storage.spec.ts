import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { LockService, RedisTx } from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

/**
 * Node runs every AsyncLocalStorage that is enabled for every promise the
 * process makes. An application that left its storages enabled when it
 * closed slowed every later promise of the process down (tests that open many
 * applications, a benchmark, a server that restarts its module in process):
 * after sixty had come and gone, a plain ioredis transaction cost almost four
 * times its CPU.
 */
describe('the library’s AsyncLocalStorage instances', () => {
  const bed = useRedisServer();
  afterEach(() => jest.restoreAllMocks());

  it('are disabled when the application closes, after transactions and locks used them', async () => {
    const used = new Set<AsyncLocalStorage<unknown>>();
    const run = AsyncLocalStorage.prototype.run;
    jest.spyOn(AsyncLocalStorage.prototype, 'run').mockImplementation(function (
      this: AsyncLocalStorage<unknown>,
      ...args: Parameters<typeof run>
    ) {
      used.add(this);
      return run.apply(this, args);
    });
    const disable = jest.spyOn(AsyncLocalStorage.prototype, 'disable');

    const app = await createTestApp({ options: { connection: bed.server.url } });
    const tx = app.get(RedisTx);
    await tx.run(() => void tx.multi.incr('n'));
    await app.get(LockService).using('k', () => 'done');
    // Both of the library's storages ran: the transaction's and the lock chain's.
    expect(used.size).toBeGreaterThanOrEqual(2);
    const disabledBeforeClose = new Set(disable.mock.contexts);
    for (const storage of used) expect(disabledBeforeClose.has(storage)).toBe(false);

    await app.close();
    const disabled = new Set(disable.mock.contexts);
    for (const storage of used) expect(disabled.has(storage)).toBe(true);
  });
});
