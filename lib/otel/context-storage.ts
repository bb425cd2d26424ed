import { AsyncLocalStorage } from 'node:async_hooks';
import { context, type Context } from '@opentelemetry/api';

/**
 * The AsyncLocalStorage behind the global OpenTelemetry context manager,
 * when it is the SDK's `AsyncLocalStorageContextManager`. A tracing
 * channel's `start` can only make a span active for the traced work by
 * binding a store (`channel.start.bindStore`), and the API has no public
 * way to reach this one; without it, spans still get the right parent, but
 * work done inside them (Redis commands) is not nested under them.
 */
export function contextStorage(): AsyncLocalStorage<Context> | undefined {
  const api = context as unknown as { _getContextManager?: () => unknown };
  const manager = api._getContextManager?.() as { _asyncLocalStorage?: unknown } | undefined;
  const storage = manager?._asyncLocalStorage;
  return storage instanceof AsyncLocalStorage ? (storage as AsyncLocalStorage<Context>) : undefined;
}
