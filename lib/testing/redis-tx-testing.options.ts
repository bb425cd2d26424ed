import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { RedisTxModuleOptions } from '../module/redis-tx.options.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import type { ThrowawayRedisOptions } from './throwaway-redis.js';

/**
 * Options of `RedisTxTestingModule.forRoot()`: those of `RedisTxModule`
 * without `connection` (where Redis is comes from `redis`), and these.
 */
export interface RedisTxTestingOptions extends Omit<RedisTxModuleOptions, 'connection'> {
  /**
   * The Redis the application uses:
   * - `'throwaway'` (the default with `lockStore: 'redis'`): a redis-server of
   *   its own, started on a free loopback port when the application starts
   *   and stopped, by its pid, when it closes;
   * - a `redis://` URL: that server, in database {@link db}, emptied when
   *   the application starts;
   * - `false` (the default with `lockStore: 'in-memory'`): no Redis at all;
   *   locks work in memory, and transactions throw `NoRedisInTestError`.
   */
  redis?: 'throwaway' | (string & {}) | false;
  /** How to start the throwaway server (`redis: 'throwaway'`). */
  server?: ThrowawayRedisOptions;
  /**
   * With a URL: the database (0–15) this application uses. Default: the one
   * the URL names, or else Jest's worker number (`JEST_WORKER_ID`), so that
   * test files running in parallel never share one.
   */
  db?: number;
  /** With a URL: empty the database when the application starts. Default true. */
  flushDb?: boolean;
  /** Where locks live: on the Redis (`'redis'`, the default), or in this process's memory (`'in-memory'`). */
  lockStore?: 'redis' | 'in-memory';
}

/** Where an application under test gets its Redis, once the defaults are applied. */
export type TestRedisTarget =
  | { kind: 'throwaway'; server: ThrowawayRedisOptions }
  | { kind: 'url'; url: string; db: number; flushDb: boolean }
  | { kind: 'none' };

const WHERE = 'RedisTxTestingModule';

const testingKeys = optionKeys<Omit<RedisTxTestingOptions, keyof RedisTxModuleOptions>>({
  redis: true,
  server: true,
  db: true,
  flushDb: true,
  lockStore: true,
});

/** Splits the testing options from the module's, checking the former; the module checks its own. */
export function resolveTestingOptions(options: RedisTxTestingOptions): {
  target: TestRedisTarget;
  inMemoryLocks: boolean;
  module: Omit<RedisTxModuleOptions, 'connection'>;
} {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError(
      'options',
      messages.optionInvalid('options', 'an object', options, WHERE),
    );
  }
  const { redis, server, db, flushDb, lockStore = 'redis', ...module } = options;
  if ('connection' in module) {
    refuseUnknownKeys({ connection: true }, testingKeys, WHERE, '', {
      connection: 'Give the URL as `redis`, or leave it out for a throwaway redis-server.',
    });
  }
  if (lockStore !== 'redis' && lockStore !== 'in-memory') {
    throw new InvalidOptionsError(
      'lockStore',
      messages.optionInvalid('lockStore', "'redis' or 'in-memory'", lockStore, WHERE),
    );
  }
  const inMemoryLocks = lockStore === 'in-memory';
  const chosen = redis ?? (inMemoryLocks ? false : 'throwaway');
  if (chosen === false) {
    if (!inMemoryLocks) {
      throw new InvalidOptionsError('redis', messages.testingNeedsLockStore(chosen));
    }
    return { target: { kind: 'none' }, inMemoryLocks, module };
  }
  if (chosen === 'throwaway') {
    return { target: { kind: 'throwaway', server: server ?? {} }, inMemoryLocks, module };
  }
  if (typeof chosen !== 'string' || !/^rediss?:\/\//.test(chosen)) {
    throw new InvalidOptionsError(
      'redis',
      messages.optionInvalid(
        'redis',
        "'throwaway', a redis:// or rediss:// URL, or false",
        chosen,
        WHERE,
      ),
    );
  }
  const url = new URL(chosen);
  const fromUrl = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined;
  const chosenDb = db ?? fromUrl ?? Number(process.env.JEST_WORKER_ID ?? 0);
  if (!Number.isInteger(chosenDb) || chosenDb < 0 || chosenDb > 15) {
    throw new InvalidOptionsError('db', messages.testingDbInvalid(chosenDb));
  }
  url.pathname = `/${chosenDb}`;
  return {
    target: { kind: 'url', url: url.toString(), db: chosenDb, flushDb: flushDb ?? true },
    inMemoryLocks,
    module,
  };
}
