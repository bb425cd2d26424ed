import type { Contender, LockClient } from './contenders/index.js';
import { perOp, type RedisMeter } from './cost.js';
import { percentile } from './stats.js';
import { warmUp } from './warm-up.js';

/** Opens a client, runs `use`, and closes it: no contender's timers or sockets outlive its trial. */
export async function withClient<T>(
  contender: Contender,
  url: string,
  use: (client: LockClient) => Promise<T>,
): Promise<T> {
  const client = await contender.open(url);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

const cycle = async (client: LockClient, key: string) => {
  const release = await client.lock(key);
  await release();
};

/** Workload 1: lock and unlock one free key, one cycle after the other. */
export function sequential(contender: Contender, url: string, meter: RedisMeter, cycles: number) {
  return withClient(contender, url, async (client) => {
    await warmUp(() => cycle(client, 'seq'), 200);
    const samples = new Array<number>(cycles);
    const cost = await meter.measure(cycles, async () => {
      for (let i = 0; i < cycles; i++) {
        const started = performance.now();
        await cycle(client, 'seq');
        samples[i] = (performance.now() - started) * 1000;
      }
    });
    return { p50Us: percentile(samples, 50), p99Us: percentile(samples, 99), ...perOp(cost) };
  });
}

export const lanes = 64;

/** Workload 2: 64 cycles in flight at once, each lane on a key of its own. */
export function inFlight(contender: Contender, url: string, meter: RedisMeter, cycles: number) {
  return withClient(contender, url, async (client) => {
    const perLane = Math.ceil(cycles / lanes);
    const run = (count: number) =>
      Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          for (let i = 0; i < count; i++) await cycle(client, `inflight:${lane}`);
        }),
      );
    await warmUp(() => run(5), 4);
    const cost = await meter.measure(perLane * lanes, () => run(perLane));
    return { cyclesPerSecond: cost.ops / (cost.wallMs / 1000), ...perOp(cost) };
  });
}
