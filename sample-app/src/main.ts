import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { RedisServer } from '../../tools/redis-server.js';
import { AppModule } from './app.module.js';

// Runs against REDIS_URL, or against a throwaway redis-server started here
// and stopped again when the app stops. PORT=0 picks a free port.
const logger = new Logger('sample-app');
const throwaway = process.env.REDIS_URL ? undefined : await RedisServer.start();
const url = process.env.REDIS_URL ?? throwaway!.url;
if (throwaway) {
  logger.log(
    `No REDIS_URL given: started a throwaway redis-server at ${url} (pid ${throwaway.pid})`,
  );
}

const app = await NestFactory.create(
  AppModule.forRedis(url, { instanceId: process.env.INSTANCE_ID || undefined }),
);
await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
const { port } = app.getHttpServer().address() as AddressInfo;
logger.log(`Listening on http://127.0.0.1:${port} (try GET /health)`);

// Stops on Ctrl-C or SIGTERM: app.close() runs Nest's shutdown hooks (the
// library releases its locks and closes its connections), then the
// throwaway server goes. Nothing should be left to keep the process alive;
// if something is, the process says so and exits with 1 rather than hang.
const EXIT_GRACE_MS = 5_000;
async function shutDown(signal: NodeJS.Signals): Promise<void> {
  logger.log(`${signal}: closing`);
  try {
    await app.close();
  } finally {
    await throwaway?.stop();
  }
  setTimeout(() => {
    logger.error(`Still running ${EXIT_GRACE_MS} ms after closing: something was left open`);
    process.exit(1);
  }, EXIT_GRACE_MS).unref();
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    shutDown(signal).catch((error: unknown) => {
      logger.error(`Shutdown failed: ${String(error)}`);
      process.exit(1);
    });
  });
}
