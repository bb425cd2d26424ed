import 'reflect-metadata';
import { LockService } from '../../lib/index.js';
import { LOCK_STORE, type LockStore } from '../../lib/locks/lock-store.js';
import type { RedisTxTestingOptions } from '../../lib/testing/index.js';
import { InMemoryLocks } from '../../lib/testing/in-memory-locks.js';
import { NodeLocks } from '../../lib/locks/node-locks.js';
import { useRedisServer } from '../support/redis.js';
import { createTestingApp } from '../support/testing-app.js';
import { defineLockConformance, type LockHarness } from './lock-conformance.js';

async function harness(options: RedisTxTestingOptions): Promise<LockHarness> {
  const app = await createTestingApp(options);
  return {
    locks: app.get(LockService),
    store: app.get<LockStore>(LOCK_STORE),
    close: () => app.close(),
  };
}

describe('lock semantics on the Redis store', () => {
  const bed = useRedisServer();
  it('runs on NodeLocks', async () => {
    const h = await harness({ redis: bed.server.url });
    expect(h.store).toBeInstanceOf(NodeLocks);
    await h.close();
  });
  defineLockConformance((locks) => harness({ redis: bed.server.url, locks }));
});

describe('lock semantics on the in-memory store', () => {
  it('runs on InMemoryLocks', async () => {
    const h = await harness({ lockStore: 'in-memory' });
    expect(h.store).toBeInstanceOf(InMemoryLocks);
    await h.close();
  });
  defineLockConformance((locks) => harness({ lockStore: 'in-memory', locks }));
});
