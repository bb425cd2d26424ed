import { Redis } from 'ioredis';
import type { Contender, LockClient } from './contenders.js';
import { mean, medianOf, percentile } from './stats.js';

export interface Sizes {
  sequentialCycles: number;
  inFlightCycles: number;
  contendedSections: number;
  soakCycles: number;
  soakSeconds: number;
  repetitions: number;
}

/** Mean round trip of PING on one connection, in µs: the unit every lock cycle is built from. */
export async function pingRoundTrip(url: string, times: number): Promise<number> {
  const redis = new Redis(url);
  try {
    for (let i = 0; i < 200; i++) await redis.ping();
    const started = performance.now();
    for (let i = 0; i < times; i++) await redis.ping();
    return ((performance.now() - started) / times) * 1000;
  } finally {
    await redis.quit();
  }
}

async function withClient<T>(
  contender: Contender,
  url: string,
  use: (c: LockClient) => Promise<T>,
): Promise<T> {
  const client = await contender.open(url);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

/** Workload 1: lock and unlock one free key, one cycle after the other (one run). */
export function sequentialCycle(contender: Contender, url: string, sizes: Sizes) {
  return withClient(contender, url, async (client) => {
    for (let i = 0; i < 200; i++) await (await client.lock('seq'))();
    const samples: number[] = [];
    for (let i = 0; i < sizes.sequentialCycles; i++) {
      const started = performance.now();
      await (
        await client.lock('seq')
      )();
      samples.push((performance.now() - started) * 1000);
    }
    return { meanUs: mean(samples), p99Us: percentile(samples, 99) };
  });
}

/** Workload 2: 64 cycles in flight at once, each on a key of its own (one run). */
export function inFlightCycles(contender: Contender, url: string, sizes: Sizes) {
  return withClient(contender, url, async (client) => {
    const perLane = Math.ceil(sizes.inFlightCycles / 64);
    const lane = async (index: number, count: number) => {
      for (let i = 0; i < count; i++) await (await client.lock(`inflight:${index}`))();
    };
    await Promise.all(Array.from({ length: 64 }, (_, i) => lane(i, 20)));
    const started = performance.now();
    await Promise.all(Array.from({ length: 64 }, (_, i) => lane(i, perLane)));
    return { cyclesPerSecond: (perLane * 64) / ((performance.now() - started) / 1000) };
  });
}

interface Section {
  worker: number;
  requestedAt: number;
  acquiredAt: number;
  releasedAt: number;
}

/**
 * Workload 3: 16 workers, each with its own client, take turns on one key to
 * do a read-modify-write on a second server that loses updates unless the lock
 * excludes. Only commands sent to the lock server count.
 */
export function contended(contender: Contender, lockUrl: string, dataUrl: string, sizes: Sizes) {
  const workers = 16;
  const perWorker = Math.max(1, Math.round(sizes.contendedSections / workers));
  return medianOf(sizes.repetitions, async () => {
    const clients = await Promise.all(
      Array.from({ length: workers }, () => contender.open(lockUrl)),
    );
    const data = new Redis(dataUrl);
    const lockPort = Number(new URL(lockUrl).port);
    const counting = countCommandsSentTo(lockPort);
    try {
      await data.set('counter', '0');
      const sections: Section[] = [];
      const started = performance.now();
      await Promise.all(
        clients.map(async (client, worker) => {
          for (let i = 0; i < perWorker; i++) {
            const requestedAt = performance.now();
            const release = await client.lock('contended');
            const acquiredAt = performance.now();
            const value = Number(await data.get('counter'));
            await data.set('counter', String(value + 1));
            const releasedAt = performance.now();
            await release();
            sections.push({ worker, requestedAt, acquiredAt, releasedAt });
          }
        }),
      );
      const wallMs = performance.now() - started;
      const commands = counting.stop();
      const total = perWorker * workers;
      const exact = Number(await data.get('counter')) === total;
      sections.sort((a, b) => a.acquiredAt - b.acquiredAt);
      const waits = sections.map((s) => s.acquiredAt - s.requestedAt);
      const gaps: number[] = [];
      const otherWorkerGaps: number[] = [];
      let toOtherWorker = 0;
      for (let i = 1; i < sections.length; i++) {
        const gap = (sections[i]!.acquiredAt - sections[i - 1]!.releasedAt) * 1000;
        gaps.push(gap);
        if (sections[i]!.worker !== sections[i - 1]!.worker) {
          toOtherWorker++;
          otherWorkerGaps.push(gap);
        }
      }
      return {
        wallMs,
        sectionsPerSecond: total / (wallMs / 1000),
        p50WaitMs: percentile(waits, 50),
        p99WaitMs: percentile(waits, 99),
        p50GapUs: percentile(gaps, 50),
        p50OtherWorkerGapUs: percentile(otherWorkerGaps, 50),
        otherWorkerHandoffsPct: (toOtherWorker / (sections.length - 1)) * 100,
        commandsPerSection: commands / total,
        counterExact: exact,
      };
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      counting.stop();
      await data.quit();
    }
  });
}

/**
 * Counts the commands every ioredis client in this process sends to one port:
 * the round trips a library makes, not the calls its scripts run inside Redis
 * (which INFO commandstats would add in). Every library here runs on ioredis.
 */
function countCommandsSentTo(port: number): { stop(): number } {
  const prototype = Redis.prototype as unknown as { sendCommand: (...args: unknown[]) => unknown };
  const original = prototype.sendCommand;
  let count = 0;
  prototype.sendCommand = function (this: Redis, ...args: unknown[]) {
    if (this.options.port === port) count++;
    return original.apply(this, args);
  };
  return {
    stop() {
      prototype.sendCommand = original;
      return count;
    },
  };
}

/** Workload 6: many lock cycles on one client; the heap, timers and sockets must not grow. */
export async function soak(contender: Contender, url: string, sizes: Sizes) {
  const counter = new Redis(url);
  const connections = async () =>
    String(await counter.client('LIST'))
      .trim()
      .split('\n').length;
  const resources = (kind: string) =>
    process.getActiveResourcesInfo().filter((r) => r === kind).length;
  const gc = (globalThis as { gc?: () => void }).gc;
  return withClient(contender, url, async (client) => {
    for (let i = 0; i < 1_000; i++) await (await client.lock('soak'))();
    gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const timersBefore = resources('Timeout');
    const socketsBefore = resources('TCPSocketWrap');
    const connectionsBefore = await connections();
    const deadline = performance.now() + sizes.soakSeconds * 1000;
    let cycles = 0;
    while (cycles < sizes.soakCycles && performance.now() < deadline) {
      for (let i = 0; i < 1_000; i++) await (await client.lock(`soak:${i % 16}`))();
      cycles += 1_000;
    }
    gc?.();
    const result = {
      cycles,
      heapGrowthMb: (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024,
      timerGrowth: resources('Timeout') - timersBefore,
      socketGrowth: resources('TCPSocketWrap') - socketsBefore,
      connectionGrowth: (await connections()) - connectionsBefore,
      measuredGc: gc !== undefined,
    };
    await counter.quit();
    return result;
  });
}
