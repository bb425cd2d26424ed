import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LockService } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

const worker = fileURLToPath(new URL('./fixtures/lock-worker.mjs', `file://${__filename}`));

function startWorker(...args: string[]): ChildProcess {
  return spawn(process.execPath, [worker, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

describe('locks across separate Node processes (the built package)', () => {
  const bed = useAppWithRedis({});

  it('three processes keep a read-modify-write counter exact', async () => {
    const workers = [1, 2, 3].map(() => startWorker('count', bed.server.url, '40'));
    expect(await Promise.all(workers.map(exitCode))).toEqual([0, 0, 0]);
    expect(await bed.observer.get('cross-process:counter')).toBe('120');
  });

  it('frees the lock of a crashed holder when its lease ends', async () => {
    // A lease long enough that the crashed holder surely still has it when
    // the test looks, however slowly a busy machine kills and reaps it.
    const holder = startWorker('hold', bed.server.url, '5000');
    const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
    const crashedToken = Number(/held (\d+)/.exec(line.toString())![1]);
    holder.kill('SIGKILL');
    await exitCode(holder);

    const locks = bed.app.get(LockService);
    expect(await locks.tryAcquire('crashed')).toBeNull();
    const lock = await locks.acquire('crashed', { waitMs: 30_000 });
    expect(lock.fencingToken).toBeGreaterThan(crashedToken);
    await lock.release();
  });
});
