import { fileURLToPath } from 'node:url';
import type { ReplicatedRedis } from '../../tools/redis-replication.js';
import { ForkedWorker } from '../support/forked-worker.js';
import { useReplicatedRedis } from '../support/sentinel.js';

const worker = fileURLToPath(new URL('./fixtures/sentinel-worker.mjs', `file://${__filename}`));

/** How the master is replaced while the worker runs; resolves once Sentinel names the new one. */
const failovers: [string, (redis: ReplicatedRedis) => Promise<unknown>][] = [
  ['SENTINEL FAILOVER', (redis) => redis.failover()],
  [
    'the master killed',
    async (redis) => {
      const old = await redis.master();
      await old.kill();
      await redis.switchedFrom(old, 30_000);
    },
  ],
  [
    'the master frozen past the switch',
    async (redis) => {
      const old = await redis.master();
      old.pause();
      await redis.switchedFrom(old, 30_000);
    },
  ],
];

describe.each(failovers)(
  'Sentinel, after %s: the process ends by itself after app.close()',
  (_, failOver) => {
    const bed = useReplicatedRedis({ replicas: 1, sentinels: 3 });

    it('nothing the module opened (Sentinel connections included) keeps it alive', async () => {
      const { sentinels, name } = bed.redis.sentinelOptions();
      const child = ForkedWorker.start(worker, [JSON.stringify(sentinels), name]);
      try {
        await child.line('ready');
        await failOver(bed.redis);
        child.child.kill('SIGUSR2');
        await child.line('closed');
        // No process.exit in the worker: it exits only once no handle is left.
        expect(await child.exited).toBe(0);
      } finally {
        if (child.child.exitCode === null) child.child.kill('SIGKILL');
        for (const server of bed.redis.servers) server.resume();
      }
    }, 60_000);
  },
);
