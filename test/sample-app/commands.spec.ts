import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { probePid } from '../support/pids.js';
import { SampleInstance } from './sample-instance.js';

// The commands the README gives for the sample app, run exactly as given,
// from the repository root. They build into sample-app/dist, so they run
// one after another, in this file only. A build takes a while on a busy
// machine; the sample's tsconfig is incremental, so only the first is slow.
// Every process they start is ended by pid if a test fails.
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
 * 'gone' once `pid` has exited: no such process, or one that has exited
 * and waits to be reaped (a zombie, whose parent died first: it is then
 * pid 1's to reap, in its own time).
 */
function state(pid: number): 'gone' | 'running' {
  if ((probePid(pid) as { code?: string } | undefined)?.code === 'ESRCH') return 'gone';
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? 'gone' : 'running';
  } catch {
    return 'gone';
  }
}

/**
 * Whether each process the sample started is gone and its port free: the
 * node process serving HTTP and the throwaway redis-server it started.
 */
async function leftBehind(app: SampleInstance) {
  const redis = app.throwaway!;
  return {
    node: state(app.appPid),
    redisServer: state(redis.pid),
    httpPortFree: await portIsFree(Number(new URL(app.baseUrl).port)),
    redisPortFree: await portIsFree(Number(new URL(redis.url).port)),
  };
}
const nothingLeft = {
  node: 'gone',
  redisServer: 'gone',
  httpPortFree: true,
  redisPortFree: true,
};

/** For a test that failed: ends, by pid, what the command started and left running. */
function killLeftovers(app: SampleInstance | undefined): void {
  for (const pid of [app?.appPid, app?.throwaway?.pid]) {
    if (pid !== undefined && probePid(pid) === undefined) process.kill(pid, 'SIGKILL');
  }
}

// First, from no build at all: the Nest CLI, as nest-cli.json sets it up.
describe('the Nest CLI on the sample app', () => {
  const built = join(repoRoot, 'sample-app/dist/sample-app/src/main.js');

  it(
    'builds it with npx nest build',
    async () => {
      rmSync(join(repoRoot, 'sample-app/dist'), { recursive: true, force: true });
      await promisify(execFile)('npx', ['nest', 'build'], {
        cwd: repoRoot,
        timeout: BUILD_AND_START_MS,
      });
      expect(existsSync(built)).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  // `nest start` runs node through a shell (and npx runs nest through
  // another), which a signal to the one pid would not get past: it is
  // stopped as a terminal stops it, through its process group. (SIGINT
  // that way is tested on npm run sample below; one more nest build here
  // would only add time.)
  it(
    'starts it with npx nest start, and SIGTERM to its process group stops everything',
    async () => {
      let app: SampleInstance | undefined;
      try {
        app = await SampleInstance.run('npx', ['nest', 'start'], {
          cwd: repoRoot,
          processGroup: true,
          startTimeoutMs: BUILD_AND_START_MS,
        });
        await request(app.baseUrl).get('/health').expect(200);
        // npx ends by the signal itself once nest has exited: no exit code.
        const stopped = await app.stop('SIGTERM').then(
          () => 'exited',
          (error: Error) => error.message,
        );
        expect({ stopped, ...(await leftBehind(app)) }).toEqual({
          stopped: 'exited',
          ...nothingLeft,
        });
      } finally {
        await app?.kill();
        killLeftovers(app);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

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
        expect(state(app.throwaway!.pid)).toBe('gone');
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
