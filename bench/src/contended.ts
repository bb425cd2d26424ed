import { Redis } from 'ioredis';
import type { Contender, LockClient } from './contenders/index.js';
import { perOp, type RedisMeter } from './cost.js';
import { percentile } from './stats.js';
import { warmUp } from './warm-up.js';

export const workers = 16;

/**
 * `shared`: the 16 workers use one client (one application), like concurrent
 * requests in one process. `separate`: each worker has a client (an
 * application) of its own, like replicas of a service.
 */
export type Deployment = 'shared' | 'separate';

interface Section {
  worker: number;
  requestedAt: number;
  acquiredAt: number;
  releasedAt: number;
}

/**
 * Workload 3: 16 workers take turns on one key to do a read-modify-write on
 * a second server, which loses updates unless the lock excludes. The meter
 * watches the lock server only.
 */
export async function contended(
  contender: Contender,
  deployment: Deployment,
  urls: { lock: string; data: string },
  meter: RedisMeter,
  sections: number,
) {
  const perWorker = Math.max(1, Math.round(sections / workers));
  const total = perWorker * workers;
  const clients: LockClient[] =
    deployment === 'shared'
      ? [await contender.open(urls.lock)]
      : await Promise.all(Array.from({ length: workers }, () => contender.open(urls.lock)));
  const data = new Redis(urls.data);
  const section = async (worker: number, done?: Section[]) => {
    const client = clients[worker % clients.length]!;
    const requestedAt = performance.now();
    const release = await client.lock('contended');
    const acquiredAt = performance.now();
    const value = Number(await data.get('counter'));
    await data.set('counter', String(value + 1));
    const releasedAt = performance.now();
    await release();
    done?.push({ worker, requestedAt, acquiredAt, releasedAt });
  };
  const everyWorker = (run: (worker: number) => Promise<void>) =>
    Promise.all(Array.from({ length: workers }, (_, worker) => run(worker)));
  try {
    // Every worker takes its turns, unmeasured, until the warm-up time has passed.
    await warmUp(() => everyWorker((worker) => section(worker)), 2);
    await data.set('counter', '0');
    const done: Section[] = [];
    const cost = await meter.measure(total, () =>
      everyWorker(async (worker) => {
        for (let i = 0; i < perWorker; i++) await section(worker, done);
      }),
    );
    const counterExact = Number(await data.get('counter')) === total;
    return {
      sectionsPerSecond: total / (cost.wallMs / 1000),
      ...handOffs(done),
      counterExact,
      ...perOp(cost),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await data.quit();
  }
}

/** Waits, the gaps between one section's end and the next one's start, and who got the lock next. */
function handOffs(done: Section[]) {
  done.sort((a, b) => a.acquiredAt - b.acquiredAt);
  const waits = done.map((s) => s.acquiredAt - s.requestedAt);
  const gaps: number[] = [];
  let toAnotherWorker = 0;
  for (let i = 1; i < done.length; i++) {
    gaps.push((done[i]!.acquiredAt - done[i - 1]!.releasedAt) * 1000);
    if (done[i]!.worker !== done[i - 1]!.worker) toAnotherWorker++;
  }
  return {
    p50WaitMs: percentile(waits, 50),
    p99WaitMs: percentile(waits, 99),
    p50HandOffUs: percentile(gaps, 50),
    toAnotherWorkerPct: (toAnotherWorker / (done.length - 1)) * 100,
  };
}
