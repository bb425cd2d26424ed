import { fileURLToPath } from 'node:url';
import { ForkedWorker } from '../support/forked-worker.js';
import { useReplicatedRedis } from '../support/sentinel.js';

const worker = fileURLToPath(new URL('./fixtures/sentinel-worker.mjs', `file://${__filename}`));

describe('Sentinel: the process ends by itself after app.close()', () => {
  const bed = useReplicatedRedis({ replicas: 1, sentinels: 3 });

  it('after a failover, nothing the module opened (Sentinel connections included) keeps it alive', async () => {
    const { sentinels, name } = bed.redis.sentinelOptions();
    const child = ForkedWorker.start(worker, [JSON.stringify(sentinels), name]);
    try {
      await child.line('ready');
      await bed.redis.failover();
      child.child.kill('SIGUSR2');
      await child.line('closed');
      // No process.exit in the worker: it exits only once no handle is left.
      expect(await child.exited).toBe(0);
    } finally {
      if (child.child.exitCode === null) child.child.kill('SIGKILL');
    }
  }, 60_000);
});
