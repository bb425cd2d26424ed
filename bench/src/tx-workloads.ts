import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { channelNames, RedisTx, RedisTxModule, Transactional } from '../../lib/index.js';
import { perOp, type RedisMeter } from './cost.js';
import { warmUp } from './warm-up.js';

@Injectable()
class Bench {
  constructor(private readonly redis: RedisTx) {}

  @Transactional()
  async three(i: number) {
    this.redis.multi.incr('tx:a').incr('tx:b').set('tx:c', i);
  }

  run(i: number) {
    return this.redis.run(() => {
      this.redis.multi.incr('tx:a').incr('tx:b').set('tx:c', i);
    });
  }

  // Retries without end, at the default backoff: every transfer must happen.
  @Transactional({ watch: (from: string, to: string) => [from, to], retries: 1_000_000 })
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

/** A way to run work against Redis, opened for one trial and closed after it. */
interface Session<W> {
  work: W;
  close(): Promise<void>;
}
export interface TxContender<W> {
  name: string;
  /** A row shown for comparison, with no goal of its own. */
  reference?: true;
  open(url: string): Promise<Session<W>>;
}

async function benchApp(url: string): Promise<Session<Bench>> {
  const app = await NestFactory.createApplicationContext(BenchModule.on(url), { logger: false });
  return { work: app.get(Bench), close: () => app.close() };
}

async function rawClient(url: string): Promise<Session<Redis>> {
  const redis = new Redis(url);
  return { work: redis, close: async () => void (await redis.quit()) };
}

type Step = (i: number) => Promise<unknown>;

/** Workload 4's contenders: the same three-command transaction, three ways. */
export const txContenders: TxContender<Step>[] = [
  {
    name: 'raw ioredis `multi().exec()`',
    async open(url) {
      const { work: redis, close } = await rawClient(url);
      return {
        work: (i) => redis.multi().incr('tx:a').incr('tx:b').set('tx:c', i).exec(),
        close,
      };
    },
  },
  {
    // What carrying a transaction across awaits costs by itself on this Node:
    // while any AsyncLocalStorage is in use, Node (before async context
    // frames) runs a hook for every promise the process makes.
    name: 'raw ioredis `multi().exec()` inside `AsyncLocalStorage.run`',
    reference: true,
    async open(url) {
      const { work: redis, close } = await rawClient(url);
      const storage = new AsyncLocalStorage<{ i: number }>();
      return {
        work: (i) =>
          storage.run({ i }, () => redis.multi().incr('tx:a').incr('tx:b').set('tx:c', i).exec()),
        async close() {
          storage.disable();
          await close();
        },
      };
    },
  },
  {
    name: '`@Transactional`',
    async open(url) {
      const { work: bench, close } = await benchApp(url);
      return { work: (i) => bench.three(i), close };
    },
  },
  {
    name: '`RedisTx.run`',
    async open(url) {
      const { work: bench, close } = await benchApp(url);
      return { work: (i) => bench.run(i), close };
    },
  },
];

/** Workload 4: `count` transactions over `lanes` concurrent lanes (1 = one after the other). */
export async function transactions(
  contender: TxContender<Step>,
  url: string,
  meter: RedisMeter,
  count: number,
  lanes: number,
) {
  const { work: step, close } = await contender.open(url);
  try {
    const perLane = Math.ceil(count / lanes);
    const run = (n: number) =>
      Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          for (let i = 0; i < n; i++) await step(lane * n + i);
        }),
      );
    await warmUp(() => run(Math.ceil(100 / lanes)), 5);
    const cost = await meter.measure(perLane * lanes, () => run(perLane));
    return { perSecond: cost.ops / (cost.wallMs / 1000), ...perOp(cost) };
  } finally {
    await close();
  }
}

const accounts = Array.from({ length: 10 }, (_, i) => `acct:${i}`);
const pairOf = (worker: number, i: number): [string, string] => {
  const from = (worker + i) % 10;
  return [accounts[from]!, accounts[(from + 1 + ((worker + i) % 9)) % 10]!];
};
export const transferWorkers = 16;

/** Workload 5's contenders: `run` makes `count` transfers for one worker. */
interface Transfers {
  run(worker: number, count: number): Promise<void>;
  retries(): number;
}

export const watchContenders: TxContender<Transfers>[] = [
  {
    name: 'raw `WATCH` on dedicated connections, immediate retry',
    async open(url) {
      const connections = Array.from({ length: transferWorkers }, () => new Redis(url));
      let retries = 0;
      return {
        work: {
          async run(worker, count) {
            const redis = connections[worker]!;
            for (let i = 0; i < count; i++) {
              const [from, to] = pairOf(worker, i);
              for (;;) {
                await redis.watch(from, to);
                const [balance] = await redis.mget(from);
                if (Number(balance) < 1) {
                  await redis.unwatch();
                  break;
                }
                if ((await redis.multi().decrby(from, 1).incrby(to, 1).exec()) !== null) break;
                retries++;
              }
            }
          },
          retries: () => retries,
        },
        close: async () => void (await Promise.all(connections.map((c) => c.quit()))),
      };
    },
  },
  {
    name: 'nestjs-redis-tx `@Transactional({ watch })`, default backoff',
    async open(url) {
      const { work: bench, close } = await benchApp(url);
      let retries = 0;
      const onRetry = () => retries++;
      subscribe(channelNames.transactionRetry, onRetry);
      return {
        work: {
          async run(worker, count) {
            for (let i = 0; i < count; i++) await bench.transfer(...pairOf(worker, i));
          },
          retries: () => retries,
        },
        async close() {
          unsubscribe(channelNames.transactionRetry, onRetry);
          await close();
        },
      };
    },
  },
];

/** Workload 5: 16 workers make one-unit transfers between 10 accounts; the total must not change. */
export async function watchTransfers(
  contender: TxContender<Transfers>,
  url: string,
  meter: RedisMeter,
  transfers: number,
) {
  const admin = new Redis(url);
  const { work, close } = await contender.open(url);
  try {
    await admin.mset(Object.fromEntries(accounts.map((a) => [a, '1000'])));
    const perWorker = Math.ceil(transfers / transferWorkers);
    const cost = await meter.measure(perWorker * transferWorkers, () =>
      Promise.all(
        Array.from({ length: transferWorkers }, (_, worker) => work.run(worker, perWorker)),
      ),
    );
    const balances = await admin.mget(accounts);
    return {
      perSecond: cost.ops / (cost.wallMs / 1000),
      retries: work.retries(),
      totalKept: balances.reduce((sum, b) => sum + Number(b), 0) === 10_000,
      ...perOp(cost),
    };
  } finally {
    await close();
    await admin.quit();
  }
}
