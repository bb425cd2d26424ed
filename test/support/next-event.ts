import { subscribe, unsubscribe } from 'node:diagnostics_channel';

/** Resolves with the next message published on a diagnostics channel. */
export function nextEvent<T = unknown>(channel: string): Promise<T> {
  return new Promise((resolve) => {
    const listener = (message: unknown) => {
      unsubscribe(channel, listener);
      resolve(message as T);
    };
    subscribe(channel, listener);
  });
}
