import { createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import request from 'supertest';
import { probePid } from '../support/pids.js';
import { SampleInstance } from './sample-instance.js';

// The commands the README gives for the sample app, run exactly as given,
// from the repository root. They build into sample-app/dist, so they run
// one after another, in this file only. A build takes a while on a busy
// machine; the sample's tsconfig is incremental, so only the first is slow.
const repoRoot = resolve(__dirname, '../..');
const BUILD_AND_START_MS = 180_000;
const TEST_TIMEOUT_MS = 240_000;

/** Whether something could listen on the loopback `port` now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', () => done(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
  });
}

/**
 * Whether each process the sample started is gone and its port free: the
 * node process serving HTTP and the throwaway redis-server it started.
 */
async function leftBehind(app: SampleInstance) {
  const redis = app.throwaway!;
  return {
    node: (probePid(app.appPid) as { code?: string } | undefined)?.code ?? 'running',
    redisServer: (probePid(redis.pid) as { code?: string } | undefined)?.code ?? 'running',
    httpPortFree: await portIsFree(Number(new URL(app.baseUrl).port)),
    redisPortFree: await portIsFree(Number(new URL(redis.url).port)),
  };
}
const nothingLeft = {
  node: 'ESRCH',
  redisServer: 'ESRCH',
  httpPortFree: true,
  redisPortFree: true,
};

/** For a test that failed: ends, by pid, what the command started and left running. */
function killLeftovers(app: SampleInstance | undefined): void {
  for (const pid of [app?.appPid, app?.throwaway?.pid]) {
    if (pid !== undefined && probePid(pid) === undefined) process.kill(pid, 'SIGKILL');
  }
}

describe('npm run sample, as the README gives it', () => {
  const cases: [string, NodeJS.Signals, boolean][] = [
    ['SIGTERM to npm', 'SIGTERM', false],
    ['SIGINT to npm', 'SIGINT', false],
    // As a terminal sends Ctrl-C: npm and the app both get it, and npm forwards it too.
    ['SIGINT to its process group (Ctrl-C)', 'SIGINT', true],
  ];
  it.each(cases)(
    'stops the app and its throwaway redis-server on %s',
    async (_, signal, processGroup) => {
      let app: SampleInstance | undefined;
      try {
        app = await SampleInstance.run('npm', ['run', 'sample'], {
          cwd: repoRoot,
          processGroup,
          startTimeoutMs: BUILD_AND_START_MS,
        });
        expect(app.appPid).not.toBe(app.pid);
        expect(app.throwaway?.pid).toEqual(expect.any(Number));
        await request(app.baseUrl).get('/health').expect(200);

        const exitCode = await app.stop(signal).catch((error: Error) => error.message);
        expect({ exitCode, ...(await leftBehind(app)) }).toEqual({ exitCode: 0, ...nothingLeft });
      } finally {
        await app?.kill();
        killLeftovers(app);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'stops its throwaway redis-server and exits with 1 when the app cannot start',
    async () => {
      // The app's port is taken, so it starts Redis, then fails to listen.
      const taken: Server = createServer();
      await new Promise<void>((listening) => taken.listen(0, '127.0.0.1', listening));
      const { port } = taken.address() as { port: number };
      const app = SampleInstance.launch('npm', ['run', 'sample'], { cwd: repoRoot, port });
      try {
        expect(await app.exit(BUILD_AND_START_MS)).toBe(1);
        expect(app.output.join('\n')).toMatch(/Failed to start: Error: listen EADDRINUSE/);
        expect(app.throwaway?.pid).toEqual(expect.any(Number));
        expect(probePid(app.throwaway!.pid)).toMatchObject({ code: 'ESRCH' });
        expect(await portIsFree(Number(new URL(app.throwaway!.url).port))).toBe(true);
      } finally {
        await app.kill();
        killLeftovers(app);
        await new Promise((closed) => taken.close(closed));
      }
    },
    TEST_TIMEOUT_MS,
  );
});
