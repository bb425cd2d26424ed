import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import {
  LockNotAcquiredError,
  LockService,
  RedisTx,
  RedisTxError,
  Transactional,
} from '../../lib/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { CapturedLogger, createLoggedApp } from '../support/captured-logger.js';

const key = '{outage}:counter';
/** Calls of each kind sent while the node is down: each may open connections of its own. */
const callsDuringOutage = 20;

@Injectable()
class Counter {
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: [key], retries: 0 })
  async increment() {
    const value = Number(await this.redis.client.get(key));
    this.redis.multi.set(key, value + 1);
  }
}

describe('connection warnings on a Cluster: once per node and outage', () => {
  // No replicas, and slots may go unserved: the crashed master's slots wait
  // for it to come back, so its outage has an end the test can see.
  const bed = useRedisCluster({
    replicasPerMaster: 0,
    args: ['--cluster-require-full-coverage', 'no'],
  });
  const logger = new CapturedLogger();
  let app: INestApplication;

  beforeAll(async () => {
    app = await createLoggedApp(
      {
        options: {
          connection: { cluster: bed.cluster.startupNodes },
          commandTimeoutMs: 1_000,
          transactions: { readyTimeoutMs: 1_000 },
        },
        providers: [Counter],
      },
      logger,
    );
  });
  bed.beforeStop(() => app?.close());

  it('warns once for a crashed master across all connections, and logs once when it is back', async () => {
    const counter = app.get(Counter);
    const locks = app.get(LockService);
    const node = await bed.cluster.masterForKey(key);
    const address = `127.0.0.1:${node.port}`;
    const about = (level: string) =>
      logger.lines.filter((line) => line.startsWith(`[${level}]`) && line.includes(address));
    // Connections of every kind to the node exist before it crashes.
    await counter.increment();
    await (await locks.acquire('outage')).release();

    await node.crash();
    for (let i = 0; i < callsDuringOutage; i++) {
      const [transaction, lock] = await Promise.all([
        counter.increment().catch((e: unknown) => e),
        locks.acquire('outage', { waitMs: 0 }).catch((e: unknown) => e),
      ]);
      expect(transaction).toBeInstanceOf(RedisTxError);
      expect(lock).toBeInstanceOf(LockNotAcquiredError);
    }
    expect(about('warn')).toHaveLength(1);
    expect(about('warn')[0]).toMatch(/not logged until a connection to it is ready again/);

    await node.restartFromFiles();
    await bed.cluster.settled();
    // Back: the next calls reach it (the first may still meet the closed connections).
    await firstSuccess(async () => {
      await counter.increment();
      await (await locks.acquire('outage', { waitMs: 0 })).release();
    });
    expect(about('log').filter((line) => line.includes(`to ${address} recovered`))).toHaveLength(1);
    expect(about('warn')).toHaveLength(1);
  }, 60_000);
});

/** Runs `call` until it succeeds, at most 20 times. */
async function firstSuccess(call: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt === 20) throw error;
    }
  }
}
