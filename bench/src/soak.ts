import { Redis } from 'ioredis';
import type { Contender } from './contenders/index.js';
import { perOp, type Cost, type RedisMeter } from './cost.js';
import { withClient } from './lock-workloads.js';
import { median } from './stats.js';

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
const segments = 10;

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
      const timersBefore = resources('Timeout');
      const socketsBefore = resources('TCPSocketWrap');
      const connectionsBefore = await connections();
      // The run is cut in ten segments with a settled heap after each one.
      // One reading can be off by megabytes either way (pages not yet
      // swept, buffers in flight), so growth compares the median of the
      // first three readings with the median of the last three: a leak
      // grows steadily, noise does not.
      const heap = [await settledHeap()];
      const segmentMs = (limits.seconds * 1000) / segments;
      const costs: Cost[] = [];
      let cycles = 0;
      for (let segment = 0; segment < segments && cycles < limits.cycles; segment++) {
        const deadline = performance.now() + segmentMs;
        let done = 0;
        costs.push(
          await meter.measure(0, async () => {
            while (cycles + done < limits.cycles && performance.now() < deadline) {
              await thousand();
              done += 1_000;
            }
          }),
        );
        cycles += done;
        heap.push(await settledHeap());
      }
      const total = costs.reduce((sum, c) => ({
        ops: cycles,
        wallMs: sum.wallMs + c.wallMs,
        clientCpuUs: sum.clientCpuUs + c.clientCpuUs,
        redisCpuUs: sum.redisCpuUs + c.redisCpuUs,
        redisCommands: sum.redisCommands + c.redisCommands,
      }));
      return {
        cycles,
        heapGrowthMb: (median(heap.slice(-3)) - median(heap.slice(0, 3))) / 2 ** 20,
        timerGrowth: resources('Timeout') - timersBefore,
        socketGrowth: resources('TCPSocketWrap') - socketsBefore,
        connectionGrowth: (await connections()) - connectionsBefore,
        measuredAfterGc: gc !== undefined,
        ...perOp({ ...total, ops: cycles }),
      };
    });
  } finally {
    await admin.quit();
  }
}
