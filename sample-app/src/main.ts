import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { RedisServer } from '../../tools/redis-server.js';
import { AppModule } from './app.module.js';

// Runs against REDIS_URL, or against a throwaway redis-server started here
// and stopped again when the app stops.
const logger = new Logger('sample-app');
const throwaway = process.env.REDIS_URL ? undefined : await RedisServer.start();
const url = process.env.REDIS_URL ?? throwaway!.url;
if (throwaway) logger.log(`No REDIS_URL given: started a throwaway redis-server at ${url}`);

const app = await NestFactory.create(AppModule.forRedis(url));
const port = Number(process.env.PORT ?? 3000);
await app.listen(port, '127.0.0.1');
logger.log(`Listening on http://127.0.0.1:${port} (try GET /health)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // app.close() runs Nest's shutdown hooks; the throwaway server goes after it.
    void app
      .close()
      .then(() => throwaway?.stop())
      .finally(() => process.exit(0));
  });
}
