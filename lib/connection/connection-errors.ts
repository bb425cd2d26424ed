import type { Logger } from '@nestjs/common';
import type { RedisClient } from './redis-client.js';

/**
 * ioredis prints unhandled 'error' events itself; route them through Nest's
 * logger instead, once per distinct message until the connection is ready
 * again, so a server that stays down does not flood the log.
 */
export function reportConnectionErrors(client: RedisClient, logger: Logger, prefix: string): void {
  let last = '';
  client.on('error', (error: Error) => {
    if (error.message === last) return;
    last = error.message;
    logger.warn(`${prefix}: ${error.message}`);
  });
  client.on('ready', () => {
    last = '';
  });
}
