import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import {
  InvalidLockKeyError,
  InvalidOptionsError,
  Locked,
  LockService,
  RedisTx,
  Transactional,
  type Lock,
  type LockOptions,
  type TransactionOptions,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

/** Whatever a caller's code might hand over as a key, from JavaScript that no type checker saw. */
const badKeys: [string, unknown][] = [
  ['a number', 42],
  ['an object', { id: 1 }],
  ['an array with a non-string', ['order:1', 2]],
  ['an empty array', []],
  ['a Symbol', Symbol('order')],
  ['undefined', undefined],
  ['null', null],
  ['an empty string', ''],
  ['a blank string', '   '],
  ['a template of undefined', 'order:undefined'],
  ['an object in a template', 'order:[object Object]'],
  ['a key over maxKeyLength', `order:${'x'.repeat(600)}`],
  ['a huge key', 'k'.repeat(1_000_000)],
  ['a lone surrogate', 'order:\uD800'],
];

const badNumbers: [string, unknown][] = [
  ['-5', -5],
  ['1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ["'100'", '100'],
];
const badLockOptions: [string, LockOptions][] = [
  ['ttlMs 0', { ttlMs: 0 }],
  ...badNumbers.map(([label, v]): [string, LockOptions] => [
    `ttlMs ${label}`,
    { ttlMs: v as number },
  ]),
  ...badNumbers.map(([label, v]): [string, LockOptions] => [
    `waitMs ${label}`,
    { waitMs: v as number },
  ]),
  ['permits 0', { permits: 0 }],
  ...badNumbers.map(([label, v]): [string, LockOptions] => [
    `permits ${label}`,
    { permits: v as number },
  ]),
  ['mode "exclusive"', { mode: 'exclusive' as never }],
  ['signal that is not an AbortSignal', { signal: {} as AbortSignal }],
];
const badTransactionOptions: [string, TransactionOptions][] = [
  ['retries -5', { retries: -5 }],
  ['retries 1.5', { retries: 1.5 }],
  ['retries NaN', { retries: NaN }],
  ['retries Infinity', { retries: Infinity }],
  ["retries '100'", { retries: '100' as never }],
  ['propagation "sometimes"', { propagation: 'sometimes' as never }],
  ['watch as a string', { watch: 'acct:1' as never }],
  ['watch with an empty key', { watch: [''] }],
  ['watch with a number', { watch: [1] as never }],
  ['watch function returning a string', { watch: (() => 'acct:1') as never }],
  ['watch function returning undefined', { watch: (() => undefined) as never }],
];

@Injectable()
class Orders {
  runs = 0;
  constructor(readonly tx: RedisTx) {}

  @Locked((key: unknown) => key as string)
  async byKey(_key: unknown) {
    this.runs++;
  }

  @Transactional({ watch: (keys: unknown) => keys as string[] })
  async watching(_keys: unknown) {
    this.runs++;
    this.tx.multi.incr('n');
  }
}

describe('bad input is rejected before any I/O', () => {
  const bed = useAppWithRedis({ providers: [Orders] });
  const locks = () => bed.app.get(LockService);
  const orders = () => bed.app.get(Orders);

  /** Commands the server has processed; each reading adds exactly one (itself) to the next. */
  const processed = async () =>
    Number(/total_commands_processed:(\d+)/.exec(await bed.observer.info('stats'))![1]);

  /** Runs `fn`, expects it to fail with `type`, and that Redis received nothing meanwhile. */
  async function rejectedUnsent(fn: () => unknown, type: new (...a: never[]) => Error) {
    const before = await processed();
    const error = await Promise.resolve()
      .then(fn)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(type);
    // The only command in between is the first INFO itself.
    expect(await processed()).toBe(before + 1);
    return error as Error;
  }

  beforeAll(async () => {
    // Every connection of the app is up, so none connects (and sends its handshake) mid-test.
    await locks().using('warm-up', () => undefined);
  });
  afterEach(async () => {
    expect(orders().runs).toBe(0);
    expect(await bed.observer.dbsize()).toBe(0);
  });

  describe.each(badKeys)('a key that is %s', (_, key) => {
    it.each([
      ['LockService.acquire', () => locks().acquire(key as string)],
      ['LockService.tryAcquire', () => locks().tryAcquire(key as string)],
      ['LockService.using', () => locks().using(key as string, () => undefined)],
      ['LockService.isLocked', () => locks().isLocked(key as string)],
      ['@Locked', () => orders().byKey(key)],
    ])('is refused by %s with InvalidLockKeyError', async (_where, call) => {
      const error = await rejectedUnsent(call, InvalidLockKeyError);
      expect(error.message).toMatch(/lock key .* Return a non-empty string/s);
      // A huge key is not echoed back whole.
      expect(error.message.length).toBeLessThan(600);
    });
  });

  describe.each(badLockOptions)('lock option %s', (_, options) => {
    const option = Object.keys(options)[0]!;
    const calls: [string, () => unknown][] = [
      ['LockService.acquire', () => locks().acquire('order:1', options)],
      ['LockService.using', () => locks().using('order:1', () => undefined, options)],
    ];
    // tryAcquire has no waitMs of its own: it always tries once.
    if (option !== 'waitMs') {
      calls.push(['LockService.tryAcquire', () => locks().tryAcquire('order:1', options)]);
    }
    it.each(calls)('is refused by %s with InvalidOptionsError naming it', async (where, call) => {
      const error = await rejectedUnsent(call, InvalidOptionsError);
      expect((error as InvalidOptionsError).option).toBe(option);
      expect(error.message.startsWith(`${where}(): option`)).toBe(true);
      expect(error.message).toContain(`option \`${option}\``);
    });
  });

  describe.each([['0', 0], ...badNumbers])('a renewal of %s ms', (_, ttlMs) => {
    it.each([
      ['Lock.extend', (lock: Lock) => lock.extend(ttlMs as number)],
      ['LockService.extend', (lock: Lock) => locks().extend(lock, ttlMs as number)],
    ])('is refused by %s, and the lock stays held', async (_where, extend) => {
      const lock = await locks().acquire('order:1', { ttlMs: 60_000 });
      try {
        const error = await rejectedUnsent(() => extend(lock), InvalidOptionsError);
        expect(error.message).toContain('Lock.extend(): option `ttlMs`');
        expect(await bed.observer.pttl('lock:{order:1}')).toBeGreaterThan(50_000);
      } finally {
        await lock.release();
        // The fencing counter is kept by design; this block checks for leftovers of bad input.
        await bed.observer.del('lock:fence');
      }
    });
  });

  // `signal` is not an option of @Locked: a decorator has no call to cancel.
  describe.each(badLockOptions.filter(([, options]) => !('signal' in options)))(
    'lock option %s',
    (_, options) => {
      it('is refused by @Locked where the decorator is written', () => {
        expect(() => {
          class Bad {
            @Locked('order:1', options)
            async m() {}
          }
          return Bad;
        }).toThrow(InvalidOptionsError);
      });
    },
  );

  describe.each(badTransactionOptions)('transaction option %s', (_, options) => {
    const atRuntime = typeof options.watch === 'function';

    it('is refused by RedisTx.run with InvalidOptionsError naming it', async () => {
      const tx = bed.app.get(RedisTx);
      const error = await rejectedUnsent(
        () => tx.run(() => void tx.multi.incr('n'), options),
        InvalidOptionsError,
      );
      expect(error.message).toContain(`option \`${Object.keys(options)[0]!}\``);
    });

    it('is refused by @Transactional', async () => {
      if (atRuntime) {
        // A watch function runs with the arguments: its result is checked before WATCH.
        const watch = options.watch as (...a: never[]) => unknown;
        await rejectedUnsent(() => orders().watching(watch()), InvalidOptionsError);
        return;
      }
      expect(() => {
        class Bad {
          @Transactional(options)
          async m() {}
        }
        return Bad;
      }).toThrow(InvalidOptionsError);
    });
  });

  it('@Transactional with a watch function returning non-strings sends nothing', async () => {
    for (const keys of [[1], [''], [{}], 'acct:1', null]) {
      await rejectedUnsent(() => orders().watching(keys), InvalidOptionsError);
    }
  });
});
