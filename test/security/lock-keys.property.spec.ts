import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import fc from 'fast-check';
import {
  channelNames,
  InvalidLockKeyError,
  Locked,
  LockService,
  RedisTx,
  type LockAcquireEvent,
} from '../../lib/index.js';
import { checkLockNames, lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

/** Characters that mean something to Redis (hash tags, glob patterns) or to the key layout. */
const tricky = [
  '{',
  '}',
  '*',
  '?',
  '[',
  ']',
  '\\',
  ' ',
  ':',
  '^',
  '-',
  'a',
  'b',
  'lock:',
  'é',
  '😀',
];
const trickyString = fc.string({ unit: fc.constantFrom(...tricky), minLength: 1, maxLength: 12 });
const anyText = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });
/** Well-formed text only: lone surrogates are refused by the key check (see below). */
const lockName = fc.oneof(trickyString, anyText);
const keyPrefix = fc.oneof(
  fc.constant('lock:'),
  fc.constant(''),
  fc.string({ unit: fc.constantFrom('a', ':', '*', '?', '[', '-', 'é'), maxLength: 6 }),
);

const allKeys = (prefix: string, name: string) => Object.values(lockRedisKeys(prefix, name));
/** What Redis stores: the UTF-8 bytes. */
const bytes = (key: string) => Buffer.from(key, 'utf8').toString('hex');

/** A name the key check accepts (no `undefined`/`null`/`NaN` words, not blank). */
function acceptable(name: string): boolean {
  try {
    checkLockNames(name, 512, 'test');
    return true;
  } catch {
    return false;
  }
}

describe('lock keys (property)', () => {
  it('gives distinct names disjoint sets of Redis keys, byte for byte', () => {
    fc.assert(
      fc.property(keyPrefix, lockName, lockName, (prefix, a, b) => {
        fc.pre(a !== b);
        const mine = new Set(allKeys(prefix, a).map(bytes));
        expect(mine.size).toBe(5);
        for (const key of allKeys(prefix, b).map(bytes)) expect(mine.has(key)).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });

  it('puts every key of one lock in the same Cluster hash slot', () => {
    fc.assert(
      fc.property(keyPrefix, lockName, (prefix, name) => {
        const slots = new Set(allKeys(prefix, name).map((key) => calculateSlot(key)));
        expect(slots.size).toBe(1);
      }),
      { numRuns: 2_000 },
    );
    // The case that used to scatter: a name starting with `}` leaves an empty hash tag.
    expect(new Set(allKeys('lock:', '}x').map((key) => calculateSlot(key))).size).toBe(1);
  });

  it('applies the key prefix exactly once, also to a name that starts with the prefix', () => {
    fc.assert(
      fc.property(keyPrefix, lockName, fc.boolean(), (prefix, rest, startWithPrefix) => {
        const name = startWithPrefix ? `${prefix}${rest}` : rest;
        for (const key of allKeys(prefix, name)) {
          // Prefix, then the hash tag holding the whole name: nothing stripped, nothing doubled.
          expect(key.startsWith(`${prefix}{`)).toBe(true);
          expect(key.slice(prefix.length + 1).includes(name)).toBe(true);
          expect(key.length).toBeLessThanOrEqual(prefix.length + name.length + 6);
        }
      }),
      { numRuns: 1_000 },
    );
    expect(lockRedisKeys('lock:', 'lock:x').writer).toBe('lock:{lock:x}');
  });

  it('refuses a name with a lone surrogate, which UTF-8 would turn into the same key as another', () => {
    // '\uD800' and '\uD801' are different strings but both reach Redis as U+FFFD.
    expect(bytes(lockRedisKeys('lock:', '\uD800').writer)).toBe(
      bytes(lockRedisKeys('lock:', '\uD801').writer),
    );
    for (const name of ['\uD800', 'order:\uDC00', 'x\uD83D']) {
      expect(() => checkLockNames(name, 512, 'test')).toThrow(InvalidLockKeyError);
    }
    expect(checkLockNames('order:😀', 512, 'test')).toEqual(['order:😀']);
  });
});

@Injectable()
class Orders {
  constructor(
    readonly locks: LockService,
    readonly tx: RedisTx,
  ) {}

  @Locked((id: string) => `order:${id}`, { waitMs: 0 })
  async pay(_id: string, whileHeld: () => Promise<void>) {
    await whileHeld();
  }
}

describe('lock keys in Redis', () => {
  const bed = useAppWithRedis({ providers: [Orders] });
  const orders = () => bed.app.get(Orders);
  const rejections: unknown[] = [];
  const recordRejection = (reason: unknown) => rejections.push(reason);
  beforeAll(() => process.on('unhandledRejection', recordRejection));
  afterAll(() => process.off('unhandledRejection', recordRejection));
  afterEach(async () => {
    expect(rejections.splice(0)).toEqual([]);
    // The fence counter is kept by design; nothing else of a lock outlives it.
    expect((await bed.observer.keys('*')).filter((k) => !k.endsWith('lock:fence'))).toEqual([]);
  });

  it('holds distinct locks for 50 generated distinct ids, each visible as exactly its own key', async () => {
    const id = fc.oneof(trickyString, anyText).filter((s) => acceptable(`order:${s}`));
    await fc.assert(
      fc.asyncProperty(id, id, async (a, b) => {
        fc.pre(a !== b);
        const mine = lockRedisKeys('lock:', `order:${a}`).writer;
        await orders().pay(a, async () => {
          const stored = await bed.observer.keys('*');
          expect(stored.sort()).toEqual(['lock:fence', mine].sort());
          expect(await orders().locks.isLocked(`order:${a}`)).toBe(true);
          expect(await orders().locks.isLocked(`order:${b}`)).toBe(false);
          // The other id is free to take at the same time.
          await orders().pay(b, async () => {
            expect(await bed.observer.exists(lockRedisKeys('lock:', `order:${b}`).writer)).toBe(1);
          });
        });
        expect(await bed.observer.keys('*')).toEqual(['lock:fence']);
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    ['a*', 'ab'],
    ['a?', 'ab'],
    ['[ab]', 'a'],
    ['*', 'anything'],
    ['\\*', '*'],
    ['{x}', 'x'],
    ['}x', 'x'],
  ])('treats a glob-like id %j as itself, never as a pattern matching %j', async (glob, plain) => {
    await orders().pay(glob, async () => {
      expect(await orders().locks.isLocked(`order:${glob}`)).toBe(true);
      expect(await orders().locks.isLocked(`order:${plain}`)).toBe(false);
      expect(
        await orders()
          .locks.tryAcquire(`order:${plain}`)
          .then((l) => l?.release()),
      ).toBe(true);
    });
  });

  it('never sends KEYS or SCAN while locking or transacting on glob-like names', async () => {
    const names = ['*', 'a*', '[a-z]', '?', '\\'];
    await bed.observer.config('RESETSTAT');
    for (const name of names) {
      await orders().pay(name, async () => {
        await orders().locks.isLocked(`order:${name}`);
        await orders().locks.using(`other:${name}`, () => undefined, { mode: 'read' });
        await orders().locks.using(`sem:${name}`, () => undefined, { permits: 2 });
      });
      await orders().tx.run(() => void orders().tx.multi.set(`data:${name}`, 'v'), {
        watch: [`data:${name}`],
      });
    }
    const stats = await bed.observer.info('commandstats');
    expect(stats).toMatch(/cmdstat_evalsha|cmdstat_eval:/);
    expect(stats).not.toMatch(/cmdstat_(keys|scan):/);
    await bed.observer.del(...names.map((name) => `data:${name}`));
  });
});

describe('lock keys with ioredis’s own keyPrefix', () => {
  const bed = useAppWithRedis({ providers: [Orders] });
  let prefixed: INestApplication;
  let other: INestApplication;
  beforeAll(async () => {
    const connection = { host: bed.server.host, port: bed.server.port, keyPrefix: 'app:' };
    prefixed = await createTestApp({
      options: { connection, locks: { pollMs: 60_000 } },
      providers: [Orders],
    });
    other = await createTestApp({ options: { connection }, providers: [Orders] });
  });
  bed.beforeStop(async () => {
    await prefixed?.close();
    await other?.close();
  });

  it('stores every lock key, the fence counter included, with that prefix exactly once', async () => {
    const locks = prefixed.get(LockService);
    const lock = await locks.acquire('x');
    expect((await bed.observer.keys('*')).sort()).toEqual(['app:lock:fence', 'app:lock:{x}']);
    expect(await locks.isLocked('x')).toBe(true);
    // The app without the connection prefix sees a different lock.
    expect(await bed.app.get(LockService).isLocked('x')).toBe(false);
    expect(await lock.extend(5_000)).toBe(true);
    expect(await lock.release()).toBe(true);
    expect(await bed.observer.keys('*')).toEqual(['app:lock:fence']);
  });

  it('hands the lock over through pub/sub, on a channel both sides agree on', async () => {
    const events: LockAcquireEvent[] = [];
    const listener = (event: unknown) => events.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, listener);
    try {
      const holder = await other.get(LockService).acquire('handoff');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      // pollMs is a minute: only the release message can wake this waiter in time.
      const waiting = prefixed.get(LockService).acquire('handoff', { waitMs: 20_000 });
      await waitAnnounced;
      await holder.release();
      const lock = await waiting;
      expect(events.at(-1)).toMatchObject({ keys: ['handoff'], wokenBy: 'release' });
      expect(await bed.observer.exists('app:lock:{handoff}')).toBe(1);
      await lock.release();
    } finally {
      unsubscribe(channelNames.lockAcquire, listener);
    }
    expect(await bed.observer.keys('*')).toEqual(['app:lock:fence']);
  });

  it('prefixes transaction and WATCH keys once, and still sees a conflict on the watched key', async () => {
    const tx = prefixed.get(RedisTx);
    let attempts = 0;
    const result = await tx.run(
      async () => {
        attempts++;
        // Changed behind the WATCH on the first attempt, through the raw (unprefixed) name.
        if (attempts === 1) await bed.observer.incr('app:n');
        tx.multi.incr('n');
      },
      { watch: ['n'] },
    );
    expect(result.attempts).toBe(2);
    expect(await bed.observer.get('app:n')).toBe('2');
    expect(await bed.observer.exists('n', 'app:app:n')).toBe(0);
  });
});
