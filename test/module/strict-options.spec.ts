import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  InvalidOptionsError,
  Locked,
  LockService,
  RedisTx,
  RedisTxModule,
  Transactional,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

/** The InvalidOptionsError `fn` throws (or rejects with); fails the test when it throws anything else. */
async function refusal(fn: () => unknown): Promise<InvalidOptionsError> {
  const error = await Promise.resolve()
    .then(fn)
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(error).toBeInstanceOf(InvalidOptionsError);
  return error as InvalidOptionsError;
}

function expectUnknown(error: InvalidOptionsError, option: string, closest: string | undefined) {
  expect(error.option).toBe(option);
  expect(error.message).toContain(`unknown option \`${option}\``);
  if (closest) expect(error.message).toContain(`did you mean \`${closest}\`?`);
  else expect(error.message).not.toContain('did you mean');
}

const url = 'redis://127.0.0.1:1';

describe('unknown options are refused, naming the key and the closest known one', () => {
  describe('RedisTxModule.forRoot()', () => {
    it.each([
      [{ lock: {} }, 'lock', 'locks'],
      [{ locks: { ttl: 1_000 } }, 'locks.ttl', 'locks.ttlMs'],
      [{ locks: { waitMS: 1_000 } }, 'locks.waitMS', 'locks.waitMs'],
      [{ transactions: { retry: 3 } }, 'transactions.retry', 'transactions.retries'],
      [
        { transactions: { backoff: { max: 100 } } },
        'transactions.backoff.max',
        'transactions.backoff.maxMs',
      ],
      [
        { locks: { redlock: { connections: [], clockDrift: 0.01 } } },
        'locks.redlock.clockDrift',
        'locks.redlock.clockDriftFactor',
      ],
      [{ commandTimeout: 100 }, 'commandTimeout', 'commandTimeoutMs'],
      [{ locks: { banana: 1 } }, 'locks.banana', undefined],
      [{ global: true }, 'global', 'isGlobal'],
      [{ http: { exposeLockName: true } }, 'http.exposeLockName', 'http.exposeLockNames'],
    ])('%j: throws when called, naming the key', (extra, option, closest) => {
      let thrown: unknown;
      try {
        RedisTxModule.forRoot({ connection: url, ...extra } as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expectUnknown(thrown as InvalidOptionsError, option, closest);
    });

    it('lists the options of that level when none is close', () => {
      expect(() =>
        RedisTxModule.forRoot({ connection: url, locks: { banana: 1 } } as never),
      ).toThrow(/the options here are `locks\.ttlMs`, `locks\.waitMs`/);
    });

    it('accepts every documented key, and leaves ioredis options and script entries alone', () => {
      expect(() =>
        RedisTxModule.forRoot({
          connection: { host: '127.0.0.1', port: 1, someIoredisOption: true } as never,
          isGlobal: true,
          commandTimeoutMs: 1_000,
          shutdownTimeoutMs: 1_000,
          transactions: {
            retries: 1,
            watchConnections: 2,
            readyTimeoutMs: 100,
            backoff: { initialMs: 1, maxMs: 2 },
          },
          locks: {
            ttlMs: 1_000,
            waitMs: 0,
            keyPrefix: 'l:',
            maxKeyLength: 64,
            pollMs: 100,
            replicaAcks: 0,
            replicaAckTimeoutMs: 50,
          },
          scripts: { hello: { lua: 'return 1', numberOfKeys: 0, note: 'x' } as never },
          http: { exposeLockNames: true },
        }),
      ).not.toThrow();
    });

    it('refuses an `http.exposeLockNames` that is not a boolean, naming it', () => {
      expect(() =>
        RedisTxModule.forRoot({ connection: url, http: { exposeLockNames: 'yes' } } as never),
      ).toThrow(/option `http\.exposeLockNames` must be true or false; got "yes"/);
    });
  });

  describe('RedisTxModule.forRootAsync()', () => {
    const boot = (factoryResult: object) =>
      Test.createTestingModule({
        imports: [
          RedisTxModule.forRootAsync({ useFactory: () => factoryResult as { connection: string } }),
        ],
      }).compile();

    it('refuses an unknown key in the factory result when it resolves', async () => {
      const error = await refusal(() => boot({ connection: url, locks: { ttl: 1_000 } }));
      expectUnknown(error, 'locks.ttl', 'locks.ttlMs');
    });

    it('refuses isGlobal in the factory result, saying where it belongs', async () => {
      const error = await refusal(() => boot({ connection: url, isGlobal: false }));
      expect(error.option).toBe('isGlobal');
      expect(error.message).toMatch(/give `isGlobal` to RedisTxModule\.forRootAsync\(\) itself/);
    });

    it('refuses an unknown key of its own options when called', async () => {
      const error = await refusal(() =>
        RedisTxModule.forRootAsync({
          useFactory: () => ({ connection: url }),
          injects: [],
        } as never),
      );
      expectUnknown(error, 'injects', 'inject');
    });
  });

  describe('decorators, where they are written', () => {
    it.each([
      [{ retry: 3 }, 'retry', 'retries'],
      [{ watchKeys: ['a'] }, 'watchKeys', 'watch'],
      [{ propagate: 'never' }, 'propagate', 'propagation'],
    ])('@Transactional(%j)', (options, option, closest) => {
      let thrown: unknown;
      try {
        class Bad {
          @Transactional(options as never)
          async m() {}
        }
        void Bad;
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expectUnknown(thrown as InvalidOptionsError, option, closest);
      expect((thrown as Error).message).toMatch(/^@Transactional\(\) on Bad\.m: /);
    });

    it.each([
      [{ ttl: 1_000 }, 'ttl', 'ttlMs'],
      [{ onbusy: 'skip' }, 'onbusy', 'onBusy'],
      [{ wait: 0 }, 'wait', 'waitMs'],
      [{ whatever: 1 }, 'whatever', undefined],
    ])('@Locked(key, %j)', (options, option, closest) => {
      let thrown: unknown;
      try {
        class Bad {
          @Locked('k', options as never)
          async m() {}
        }
        void Bad;
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InvalidOptionsError);
      expectUnknown(thrown as InvalidOptionsError, option, closest);
    });

    it('@Locked refuses `signal`, saying where it works', () => {
      expect(() => {
        class Bad {
          @Locked('k', { signal: new AbortController().signal } as never)
          async m() {}
        }
        return Bad;
      }).toThrow(/unknown option `signal`; @Locked\(\) has no call to cancel/);
    });
  });

  describe('calls, before Redis is touched', () => {
    @Injectable()
    class Nothing {}
    const bed = useAppWithRedis({ providers: [Nothing] });
    const locks = () => bed.app.get(LockService);
    afterEach(async () => {
      expect(await bed.observer.dbsize()).toBe(0);
    });

    it.each([
      ['LockService.acquire()', () => locks().acquire('k', { ttl: 1_000 } as never)],
      ['LockService.tryAcquire()', () => locks().tryAcquire('k', { ttl: 1_000 } as never)],
      ['LockService.using()', () => locks().using('k', () => 1, { ttl: 1_000 } as never)],
    ])('%s refuses `ttl`, suggesting `ttlMs`', async (where, call) => {
      const error = await refusal(call);
      expectUnknown(error, 'ttl', 'ttlMs');
      expect(error.message.startsWith(`${where}: `)).toBe(true);
    });

    it('LockService.acquire() refuses onBusy, which only @Locked reads', async () => {
      expectUnknown(
        await refusal(() => locks().acquire('k', { onBusy: 'skip' } as never)),
        'onBusy',
        undefined,
      );
    });

    it('LockService.tryAcquire() refuses waitMs: it never waits', async () => {
      const error = await refusal(() => locks().tryAcquire('k', { waitMs: 5_000 } as never));
      expect(error.option).toBe('waitMs');
      expect(error.message).toMatch(/tryAcquire\(\) never waits; use acquire\(\)/);
    });

    it('RedisTx.run() refuses `retry`, suggesting `retries`', async () => {
      const tx = bed.app.get(RedisTx);
      const error = await refusal(() =>
        tx.run(() => void tx.multi.incr('n'), { retry: 2 } as never),
      );
      expectUnknown(error, 'retry', 'retries');
    });
  });
});
