import { Redis } from 'ioredis';
import type { Contender } from './contenders/index.js';
import { perOp, type RedisMeter } from './cost.js';
import { withClient } from './lock-workloads.js';

const gc = (globalThis as { gc?: () => void }).gc;
/**
 * Collects until the heap stops shrinking, with a turn of the event loop
 * between rounds (weak references and finalizers are only cleared then), so
 * that garbage still waiting is not taken for growth.
 */
async function settledHeap(): Promise<number> {
  let heap = Infinity;
  for (let round = 0; round < 10; round++) {
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    const now = process.memoryUsage().heapUsed;
    if (now >= heap) return now;
    heap = now;
  }
  return heap;
}
const resources = (kind: string) =>
  process.getActiveResourcesInfo().filter((r) => r === kind).length;

const warmUpCycles = 10_000;

/** Workload 6: many lock cycles on one client; the heap, timers, sockets and connections must not grow. */
export async function soak(
  contender: Contender,
  url: string,
  meter: RedisMeter,
  limits: { cycles: number; seconds: number },
) {
  const admin = new Redis(url);
  const connections = async () =>
    String(await admin.client('LIST'))
      .trim()
      .split('\n').length;
  try {
    return await withClient(contender, url, async (client) => {
      const thousand = async () => {
        for (let i = 0; i < 1_000; i++) await (await client.lock(`soak:${i % 16}`))();
      };
      // Caches, pools and compiled code fill up during the first few thousand
      // cycles; growth is measured from there on.
      for (let i = 0; i < warmUpCycles; i += 1_000) await thousand();
      const heapBefore = await settledHeap();
      const timersBefore = resources('Timeout');
      const socketsBefore = resources('TCPSocketWrap');
      const connectionsBefore = await connections();
      const deadline = performance.now() + limits.seconds * 1000;
      let cycles = 0;
      const cost = await meter.measure(0, async () => {
        while (cycles < limits.cycles && performance.now() < deadline) {
          await thousand();
          cycles += 1_000;
        }
      });
      const heapAfter = await settledHeap();
      return {
        cycles,
        heapGrowthMb: (heapAfter - heapBefore) / 2 ** 20,
        timerGrowth: resources('Timeout') - timersBefore,
        socketGrowth: resources('TCPSocketWrap') - socketsBefore,
        connectionGrowth: (await connections()) - connectionsBefore,
        measuredAfterGc: gc !== undefined,
        ...perOp({ ...cost, ops: cycles }),
      };
    });
  } finally {
    await admin.quit();
  }
}
