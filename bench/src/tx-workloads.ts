import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { channelNames, RedisTx, RedisTxModule, Transactional } from '../../lib/index.js';
import type { Sizes } from './lock-workloads.js';
import { medianOf } from './stats.js';

@Injectable()
class Bench {
  constructor(private readonly redis: RedisTx) {}

  @Transactional()
  async three(i: number) {
    this.redis.multi.incr('tx:a').incr('tx:b').set('tx:c', i);
  }

  @Transactional({ watch: (from: string, to: string) => [from, to], retries: 10_000 })
  async transfer(from: string, to: string) {
    const [balance] = await this.redis.client.mget(from);
    if (Number(balance) < 1) return;
    this.redis.multi.decrby(from, 1).incrby(to, 1);
  }
}

@Module({})
class BenchModule {
  static on(url: string): DynamicModule {
    return {
      module: BenchModule,
      imports: [RedisTxModule.forRoot({ connection: url })],
      providers: [Bench],
    };
  }
}

async function withBench<T>(url: string, use: (bench: Bench) => Promise<T>): Promise<T> {
  const app = await NestFactory.createApplicationContext(BenchModule.on(url), { logger: false });
  try {
    return await use(app.get(Bench));
  } finally {
    await app.close();
  }
}

async function rate(
  count: number,
  lanes: number,
  step: (i: number) => Promise<unknown>,
): Promise<number> {
  const perLane = Math.ceil(count / lanes);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = 0; i < perLane; i++) await step(lane * perLane + i);
    }),
  );
  return (perLane * lanes) / ((performance.now() - started) / 1000);
}

/** Workload 4: a three-command transaction, one after the other and 64 in flight. */
export function transactional(url: string, sizes: Sizes) {
  return medianOf(sizes.repetitions, async () => {
    const raw = new Redis(url);
    try {
      const rawStep = (i: number) => raw.multi().incr('tx:a').incr('tx:b').set('tx:c', i).exec();
      await rate(500, 1, rawStep);
      const oursResult = await withBench(url, async (bench) => {
        await rate(500, 1, (i) => bench.three(i));
        return {
          oursSequential: await rate(sizes.sequentialCycles, 1, (i) => bench.three(i)),
          oursInFlight: await rate(sizes.inFlightCycles, 64, (i) => bench.three(i)),
        };
      });
      return {
        rawSequential: await rate(sizes.sequentialCycles, 1, rawStep),
        rawInFlight: await rate(sizes.inFlightCycles, 64, rawStep),
        ...oursResult,
      };
    } finally {
      await raw.quit();
    }
  });
}

const accounts = Array.from({ length: 10 }, (_, i) => `acct:${i}`);
const pairOf = (worker: number, i: number): [string, string] => {
  const from = (worker + i) % 10;
  return [accounts[from]!, accounts[(from + 1 + ((worker + i) % 9)) % 10]!];
};

async function total(redis: Redis): Promise<number> {
  return (await redis.mget(accounts)).reduce((sum, b) => sum + Number(b), 0);
}

/** Workload 5: 16 workers make 400 one-unit transfers between 10 accounts with WATCH. */
export function watchTransfers(url: string, sizes: Sizes) {
  const workers = 16;
  const perWorker = 400 / workers;
  return medianOf(sizes.repetitions, async () => {
    const admin = new Redis(url);
    const reset = () => admin.mset(Object.fromEntries(accounts.map((a) => [a, '1000'])));
    try {
      await reset();
      let oursRetries = 0;
      const onRetry = () => oursRetries++;
      subscribe(channelNames.transactionRetry, onRetry);
      const oursStarted = performance.now();
      try {
        await withBench(url, (bench) =>
          Promise.all(
            Array.from({ length: workers }, async (_, w) => {
              for (let i = 0; i < perWorker; i++) await bench.transfer(...pairOf(w, i));
            }),
          ),
        );
      } finally {
        unsubscribe(channelNames.transactionRetry, onRetry);
      }
      const oursMs = performance.now() - oursStarted;
      const oursConserved = (await total(admin)) === 10_000;

      await reset();
      let rawRetries = 0;
      const connections = await Promise.all(
        Array.from({ length: workers }, async () => new Redis(url)),
      );
      const rawStarted = performance.now();
      await Promise.all(
        connections.map(async (redis, w) => {
          for (let i = 0; i < perWorker; i++) {
            const [from, to] = pairOf(w, i);
            for (;;) {
              await redis.watch(from, to);
              const [balance] = await redis.mget(from);
              if (Number(balance) < 1) {
                await redis.unwatch();
                break;
              }
              if ((await redis.multi().decrby(from, 1).incrby(to, 1).exec()) !== null) break;
              rawRetries++;
            }
          }
        }),
      );
      const rawMs = performance.now() - rawStarted;
      await Promise.all(connections.map((c) => c.quit()));
      return {
        oursPerSecond: 400 / (oursMs / 1000),
        oursRetries,
        oursConserved,
        rawPerSecond: 400 / (rawMs / 1000),
        rawRetries,
        rawConserved: (await total(admin)) === 10_000,
      };
    } finally {
      await admin.quit();
    }
  });
}
