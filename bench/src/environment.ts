import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { Redis } from 'ioredis';

/** A 1-minute load average at or above this means other work competes for the CPU. */
export const busyLoad = 1.5;

const root = new URL('../../../../', import.meta.url);

/** The version of an installed package, read from its package.json (some do not export it). */
export function version(path: string): string {
  const file = new URL(`node_modules/${path}/package.json`, root);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

export const ownVersion = () =>
  (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;

export const machine = () =>
  `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`;

export const redisServerVersion = () =>
  execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();

export const load = () => loadavg().map((l) => l.toFixed(2));

export const isBusy = () => loadavg()[0]! >= busyLoad;

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
