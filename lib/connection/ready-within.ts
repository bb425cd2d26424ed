import { messages } from '../redis-tx.messages.js';
import type { RedisClient } from './redis-client.js';

/**
 * Resolves when `client` is next ready; rejects when it ends for good, or
 * when `timeoutMs` passes first, with the last connection error as the
 * reason. Connection errors in between (a refused connect while Redis
 * restarts) do not end the wait: the client keeps retrying, and so does this.
 * Plain listeners rather than events.once(), which rejects on the first
 * 'error' and adds a listener per call.
 */
export function readyWithin(client: RedisClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (error: Error) => {
      lastError = error;
    };
    const done = (settle: () => void) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      client.off('error', onError);
      settle();
    };
    const onReady = () => done(resolve);
    const onEnd = () => done(() => reject(new Error(messages.connectionEnded(lastError?.message))));
    const timer = setTimeout(
      () =>
        done(() => reject(new Error(messages.unreachableWithin(timeoutMs, lastError?.message)))),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('end', onEnd);
    client.on('error', onError);
  });
}
