import type { ChainableCommander } from 'ioredis';

/**
 * A message as Nest's Redis transport reads it from a channel: `pattern`
 * selects the `@EventPattern` handler, `data` is what the handler receives.
 * Without an `id` it is an event, which no one replies to.
 */
export interface NestEventMessage<T> {
  pattern: string;
  data: T;
}

/**
 * Queues the PUBLISH of an event for `@EventPattern(pattern)` handlers on a
 * transaction's `multi`: it reaches Redis with the transaction's other
 * commands, so it goes out only if the transaction commits. The channel is
 * the pattern, which is what a Nest Redis microservice subscribes to.
 */
export function publishEvent<T>(
  multi: ChainableCommander,
  pattern: string,
  data: T,
): ChainableCommander {
  const message: NestEventMessage<T> = { pattern, data };
  return multi.publish(pattern, JSON.stringify(message));
}
