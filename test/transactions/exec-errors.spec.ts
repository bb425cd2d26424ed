import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  RedisTx,
  RedisTxError,
  Transactional,
  TransactionAbortedError,
  TransactionExecError,
  TransactionOutcomeUnknownError,
} from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

@Injectable()
class Writes {
  runs = 0;
  rolledBack: unknown[] = [];
  committed = 0;
  constructor(readonly redis: RedisTx) {}

  /** Redis's documented queue-time error: a wrong arity is refused while queueing, so EXEC aborts. */
  @Transactional()
  async queueTimeError() {
    this.redis.afterRollback((e) => this.rolledBack.push(e));
    this.redis.multi.set('a', '1').call('set', 'b').set('c', '3');
  }

  /** Redis's documented run-time error: LPOP on a string fails inside EXEC, the rest applies. */
  @Transactional()
  async runTimeError() {
    this.redis.afterCommit(() => this.committed++);
    this.redis.afterRollback((e) => this.rolledBack.push(e));
    this.redis.multi.set('a', '3').lpop('a').incr('counter');
  }

  @Transactional()
  async slowIncrement() {
    this.runs++;
    this.redis.multi.incr('counter').call('debug', 'sleep', '0.2');
  }
}

describe('EXEC outcomes with the semantics of Redis itself', () => {
  const bed = useRedisServer({ args: ['--enable-debug-command', 'yes'] });
  let app: INestApplication;
  let observer: Redis;

  beforeAll(async () => {
    app = await createTestApp({ options: { connection: bed.server.url }, providers: [Writes] });
    observer = new Redis(bed.server.url, { lazyConnect: true });
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(async () => {
    if (observer.status !== 'ready') await observer.connect().catch(() => undefined);
    await observer.flushall();
    const writes = app.get(Writes);
    writes.rolledBack = [];
    writes.committed = 0;
  });

  it('EXECABORT: a command refused while queueing aborts the whole transaction, nothing applied', async () => {
    const writes = app.get(Writes);
    const error = await writes.queueTimeError().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionAbortedError);
    expect(error).toBeInstanceOf(RedisTxError);
    const aborted = error as TransactionAbortedError;
    expect(aborted.causes).toHaveLength(1);
    expect(aborted.causes[0]!.message).toMatch(/wrong number of arguments/);
    expect(aborted.message).toMatch(/Writes\.queueTimeError.*EXECABORT.*nothing was applied/);
    expect(await observer.exists('a', 'b', 'c')).toBe(0);
    expect(writes.rolledBack).toEqual([error]);
  });

  it('a run-time error inside EXEC: the others are applied, and the error carries every reply', async () => {
    const writes = app.get(Writes);
    const error = await writes.runTimeError().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionExecError);
    const failed = error as TransactionExecError;
    expect(failed.replies).toHaveLength(3);
    expect(failed.replies[0]).toEqual({ ok: true, value: 'OK' });
    expect(failed.replies[1]!.ok).toBe(false);
    expect(failed.replies[2]).toEqual({ ok: true, value: 1 });
    expect(failed.failures.map((f) => f.index)).toEqual([1]);
    expect(failed.failures[0]!.error.message).toMatch(/WRONGTYPE/);
    expect(failed.message).toMatch(/WERE applied/);
    expect(await observer.get('a')).toBe('3');
    expect(await observer.get('counter')).toBe('1');
    // Neither kind of hook runs: the outcome is neither a commit nor a rollback.
    expect(writes.committed).toBe(0);
    expect(writes.rolledBack).toEqual([]);
  });

  it('the connection dying after EXEC was sent gives TransactionOutcomeUnknownError and no retry', async () => {
    const writes = app.get(Writes);
    writes.runs = 0;
    // Kill the server the moment EXEC leaves: its reply can never arrive.
    const onExec = () => void bed.server.kill();
    subscribe(channelNames.transactionExec, onExec);
    try {
      const error = await writes.slowIncrement().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);
      expect((error as Error).message).toMatch(/may or may not have applied/);
    } finally {
      unsubscribe(channelNames.transactionExec, onExec);
    }
    expect(writes.runs).toBe(1);
    await bed.server.restart();
    // The observer queues this until it has reconnected, so it is not mid-reconnect at teardown.
    await observer.ping();
  });

  it('keeps working after the server came back', async () => {
    const tx = app.get(RedisTx);
    const result = await tx.run(() => {
      tx.multi.incr('counter');
    });
    expect(result.replies).toEqual([1]);
  });
});
