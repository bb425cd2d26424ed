import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { Redis } from 'ioredis';

/** A 1-minute load average at or above this means other work competes for the CPU. */
export const busyLoad = 1.5;

const root = new URL('../../../../', import.meta.url);

/** The version in a package.json under the repository (read as a file: some packages do not export it). */
function version(dir: string): string {
  try {
    const file = new URL(`${dir}package.json`, root);
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'not found';
  }
}

const named = (name: string, dir = `node_modules/${name}/`) => `${name} ${version(dir)}`;

/** The machine and the versions of everything measured, one line each. */
export function versions(): string[] {
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  const redisKit = named(
    '@redis-kit/lock',
    'node_modules/@nestjs-redis/lock/node_modules/@redis-kit/lock/',
  );
  return [
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    `node ${process.version}; ${redis}`,
    `${named('nestjs-redis-tx', '')}; ${named('ioredis')}; node-redis ${version('node_modules/redis/')}; ${named('@nestjs/core')}`,
    `peers: ${named('redlock-universal')}, ${named('nestjs-redlock-universal')}, ${named('@nestjs-redis/lock')} (${redisKit}), ${named('redis-semaphore')}, ${named('@anchan828/nest-redlock')} (${named('redlock')})`,
  ];
}

export const load = () => loadavg().map((l) => l.toFixed(2));

export const isBusy = () => loadavg()[0]! >= busyLoad;

/**
 * Waits, up to `maxMs`, for the 1-minute load average to fall under
 * busyLoad. `npm run bench` compiles the bench first, on every core, and a
 * 1-minute average still carries that for a while after: the bench should
 * not call itself invalid for its own compilation, nor start while it runs.
 * Returns how long it waited, in ms.
 */
export async function quietWithin(maxMs: number): Promise<number> {
  const started = performance.now();
  while (isBusy() && performance.now() - started < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
  return performance.now() - started;
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
