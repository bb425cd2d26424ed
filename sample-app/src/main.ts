import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { RedisServer } from '../../tools/redis-server.js';
import { AppModule } from './app.module.js';

// Runs against REDIS_URL, or against a throwaway redis-server started here
// and stopped again, by pid, whenever this process stops: on Ctrl-C
// (SIGINT) or SIGTERM, and when the app fails to start. PORT=0 picks a free
// port. `npm run sample` execs this process, so the signals npm forwards
// reach it rather than the shell npm runs the script in.
const logger = new Logger('sample-app');

/** After closing: nothing should be left to keep the process alive; if something is, it says so and exits with 1 rather than hang. */
const EXIT_GRACE_MS = 5_000;
/**
 * From the signal: longer than the worst case of app.close() (the
 * library's shutdownTimeoutMs + readyTimeoutMs + 4 s) plus the
 * redis-server's own stop, so it only ends a start that hangs. Exiting
 * kills the throwaway redis-server by pid (tools/redis-server.ts).
 */
const STOP_BOUND_MS = 30_000;

let throwaway: RedisServer | undefined;
let app: INestApplication | undefined;
let stopTelemetry: (() => Promise<void>) | undefined;

async function start(): Promise<void> {
  // OpenTelemetry is loaded only when asked for.
  const metricsPort = process.env.OTEL_METRICS_PORT;
  if (metricsPort) {
    stopTelemetry = (await import('./telemetry.js')).startTelemetry(Number(metricsPort));
  }
  let url = process.env.REDIS_URL;
  if (!url) {
    // In a process group of its own: Ctrl-C reaches this process only, which
    // stops the server after the app has released its locks on it.
    throwaway = await RedisServer.start({ ownProcessGroup: true });
    url = throwaway.url;
    logger.log(
      `No REDIS_URL given: started a throwaway redis-server at ${url} (pid ${throwaway.pid})`,
    );
  }
  app = await NestFactory.create(
    AppModule.forRedis(url, { instanceId: process.env.INSTANCE_ID || undefined }),
    // Nest would otherwise end the process at once on an error here, and
    // leave the throwaway server running.
    { abortOnError: false },
  );
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  logger.log(`Listening on http://127.0.0.1:${port} (pid ${process.pid}; try GET /health)`);
}

/**
 * Closes whatever start() got to, once it has got there: app.close() runs
 * Nest's shutdown hooks (the library releases its locks and closes its
 * connections), then the throwaway server goes.
 */
async function stop(): Promise<void> {
  await started.catch(() => {});
  try {
    await app?.close();
  } finally {
    await stopTelemetry?.();
    await throwaway?.stop();
  }
}

let stopping = false;
function shutDown(why: string, exitCode: number): void {
  if (stopping) return;
  stopping = true;
  logger.log(`${why}: closing`);
  setTimeout(() => {
    logger.error(`Still running ${STOP_BOUND_MS} ms after "${why}": exiting`);
    process.exit(1);
  }, STOP_BOUND_MS).unref();
  stop().then(
    () => {
      process.exitCode = exitCode;
      setTimeout(() => {
        logger.error(`Still running ${EXIT_GRACE_MS} ms after closing: something was left open`);
        process.exit(1);
      }, EXIT_GRACE_MS).unref();
    },
    (error: unknown) => {
      logger.error(`Shutdown failed: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}

// Listening before anything starts, and for as long as the process runs: a
// signal while starting closes what has started so far, and a second one
// (Ctrl-C reaches npm and this process both, and npm forwards it) cannot cut
// the closing short and leave the redis-server behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) logger.log(`${signal}: already closing`);
    else shutDown(signal, 0);
  });
}

const started = start();
started.catch((error: unknown) => {
  logger.error(`Failed to start: ${error instanceof Error ? error.stack : String(error)}`);
  shutDown('failed to start', 1);
});
