import { Redis } from 'ioredis';

/** What one measured section cost, in total. */
export interface Cost {
  ops: number;
  wallMs: number;
  /** User + system CPU of this process during the section. */
  clientCpuUs: number;
  /** used_cpu_user + used_cpu_sys of the measured Redis server during the section. */
  redisCpuUs: number;
  /** Commands the measured Redis server processed during the section. */
  redisCommands: number;
}

/** The same cost divided by the operations it covered. */
export interface PerOp {
  clientCpuUs: number;
  redisCpuUs: number;
  redisCommands: number;
}

export const perOp = (cost: Cost): PerOp => ({
  clientCpuUs: cost.clientCpuUs / cost.ops,
  redisCpuUs: cost.redisCpuUs / cost.ops,
  redisCommands: cost.redisCommands / cost.ops,
});

const field = (info: string, name: string): number => {
  const match = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info);
  if (match === null) throw new Error(`INFO has no ${name}`);
  return Number(match[1]);
};

/**
 * Reads a Redis server's own CPU and command counters, on a connection of its
 * own, around a measured section: what a contender costs the server, not only
 * how long it takes.
 */
export class RedisMeter {
  private readonly redis: Redis;

  constructor(url: string) {
    this.redis = new Redis(url);
  }

  private async read(): Promise<{ cpuUs: number; commands: number }> {
    const info = await this.redis.info('cpu', 'stats');
    return {
      cpuUs: (field(info, 'used_cpu_user') + field(info, 'used_cpu_sys')) * 1e6,
      commands: field(info, 'total_commands_processed'),
    };
  }

  /**
   * Runs `section` and returns its cost. A full GC runs first, so that garbage
   * left by whatever ran before is not collected (and charged) here; the
   * process CPU is read right around the section, so the time other
   * contenders spend idle, and the meter's own INFO calls, are not counted.
   */
  async measure(ops: number, section: () => Promise<unknown>): Promise<Cost> {
    (globalThis as { gc?: () => void }).gc?.();
    const before = await this.read();
    const cpu = process.cpuUsage();
    const started = performance.now();
    await section();
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const after = await this.read();
    return {
      ops,
      wallMs,
      clientCpuUs: used.user + used.system,
      redisCpuUs: after.cpuUs - before.cpuUs,
      // The first INFO is counted once it has run, so it shows up in `after`.
      redisCommands: after.commands - before.commands - 1,
    };
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }
}
