import 'reflect-metadata';
import { Injectable, Scope, type INestApplication } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { freePort } from '../tools/redis-server.js';
import {
  channelNames,
  Locked,
  LockService,
  REDIS_CLIENT,
  RedisTx,
  Transactional,
} from '../lib/index.js';
import { CapturedLogger, createLoggedApp } from './support/captured-logger.js';
import { nextEvent } from './support/next-event.js';
import { useRedisServer } from './support/redis.js';

@Injectable()
class Work {
  constructor(
    readonly redis: RedisTx,
    readonly locks: LockService,
  ) {}

  @Transactional()
  async plain() {
    this.redis.multi.incr('plain');
  }

  @Transactional({ watch: ['watched'], retries: 3 })
  async watched(interfere: () => Promise<void>) {
    await this.redis.client.get('watched');
    await interfere();
    this.redis.multi.incr('watched');
  }

  @Transactional()
  async withBrokenHook() {
    this.redis.multi.incr('hooked');
    this.redis.afterCommit(() => {
      throw new Error('the hook broke');
    });
  }

  @Locked('contended', { waitMs: 3_000 })
  async contended(whileHeld: () => Promise<void>) {
    await whileHeld();
  }

  @Locked('renewed', { ttlMs: 600 })
  async renewed() {
    // A machine too busy to renew in time loses the lock instead: then there is no renewal to wait for.
    const signal = this.locks.current('renewed')!.signal;
    await Promise.race([
      nextEvent(channelNames.lockRenew),
      new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })),
    ]);
  }

  @Locked('busy', { waitMs: 0, onBusy: 'skip' })
  async skipped() {}
}

@Injectable({ scope: Scope.REQUEST })
class PerRequest {
  @Transactional()
  async run() {}
}

/** The lines a test produced, at the levels meant for operators in normal operation. */
const chatter = (lines: readonly string[]) =>
  lines.filter((line) => /^\[(log|debug|verbose)\]/.test(line));

describe('logging', () => {
  const bed = useRedisServer();

  it('is quiet in normal operation: transactions, conflicts, locks, waits, renewals and skips log nothing', async () => {
    const logger = new CapturedLogger();
    const spec = { options: { connection: bed.server.url }, providers: [Work] };
    const app = await createLoggedApp(spec, logger);
    // Another instance: its calls are not in this call chain, so they wait instead of re-entering.
    const other = await createLoggedApp(spec, logger);
    // From here on only the library speaks: Nest's own start-up lines are behind us.
    const from = logger.lines.length;
    try {
      const work = app.get(Work);
      const observer = app.get<Redis>(REDIS_CLIENT).duplicate();
      try {
        await work.plain();
        // One conflict, then a retry that commits.
        let interfered = false;
        await work.watched(async () => {
          if (interfered) return;
          interfered = true;
          await observer.set('watched', '10');
        });
        // A caller elsewhere waits for the lock and gets it handed over.
        let second: Promise<void> | undefined;
        await work.contended(async () => {
          const waiting = nextEvent(channelNames.lockWait);
          second = other.get(Work).contended(async () => undefined);
          await waiting;
        });
        await second;
        await work.renewed();
        await work.locks.using('busy', () => other.get(Work).skipped());
        await work.locks.using(
          'rw',
          () => work.locks.using('rw', () => undefined, { mode: 'read' }),
          {
            mode: 'read',
          },
        );
        expect(await observer.get('watched')).toBe('11');
        expect(await observer.keys('lock:{*')).toEqual([]);
      } finally {
        await observer.quit();
      }
    } finally {
      await other.close();
      await app.close();
    }
    expect(logger.lines.slice(from)).toEqual([]);
  });

  it('logs a failing hook once, as an error naming the method, and the commit stands', async () => {
    const logger = new CapturedLogger();
    const app = await createLoggedApp(
      { options: { connection: bed.server.url }, providers: [Work] },
      logger,
    );
    const from = logger.lines.length;
    try {
      await app.get(Work).withBrokenHook();
      expect(await app.get<Redis>(REDIS_CLIENT).get('hooked')).not.toBeNull();
    } finally {
      await app.close();
    }
    const lines = logger.lines.slice(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[error\] afterCommit hook of Work\.withBrokenHook failed/);
    expect(lines[0]).toContain('the hook broke');
  });

  it('warns once about a request-scoped provider whose methods cannot be bound', async () => {
    const logger = new CapturedLogger();
    const app = await createLoggedApp(
      { options: { connection: bed.server.url }, providers: [PerRequest] },
      logger,
    );
    await app.close();
    const warnings = logger.lines.filter((line) => line.startsWith('[warn]'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('PerRequest is request-scoped');
    expect(chatter(logger.lines).filter((line) => line.includes('PerRequest'))).toEqual([]);
  });

  it('warns about a connection that keeps failing once per node and outage, never with the password', async () => {
    const password = 'not-for-logs-51ab';
    const port = await freePort(); // nothing listens there
    const logger = new CapturedLogger();
    let app: INestApplication | undefined;
    try {
      app = await createLoggedApp(
        { options: { connection: `redis://:${password}@127.0.0.1:${port}` } },
        logger,
      );
      // Let the shared client fail to connect several times over.
      const shared = app.get<Redis>(REDIS_CLIENT);
      await new Promise<void>((resolve, reject) => {
        let failures = 0;
        const timer = setTimeout(() => reject(new Error('fewer than 4 failures in 5 s')), 5_000);
        shared.on('error', () => {
          if (++failures < 4) return;
          clearTimeout(timer);
          resolve();
        });
      });
      const warnings = logger.lines.filter((line) => line.startsWith('[warn]'));
      expect(warnings.length).toBeGreaterThan(0);
      expect(new Set(warnings).size).toBe(warnings.length);
      expect(warnings.filter((line) => line.includes('Redis shared connection'))).toHaveLength(1);
      expect(warnings[0]).toContain(`127.0.0.1:${port}`);
    } finally {
      await app?.close();
    }
    expect(logger.text).not.toContain(password);
    expect(chatter(logger.lines).filter((line) => /Redis|RedisTx/.test(line))).toEqual([]);
  });
});
