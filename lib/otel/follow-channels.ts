import type { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe, unsubscribe, type TracingChannel } from 'node:diagnostics_channel';
import { context, type Context } from '@opentelemetry/api';
import { contextOf, type Operation } from './operation.js';

interface Handlers<T extends object> {
  /** Starts the operation's span, in the context active at `start`. */
  open(trace: T, active: Context): Operation;
  /** Records its outcome, before its span ends. */
  close(trace: T, op: Operation): void;
}

/**
 * Follows a tracing channel: an operation per context object, opened at
 * `start` and ended at `asyncEnd`. With the context manager's storage bound
 * to `start`, the work traced runs in the operation's context, so the spans
 * and events made inside it (ioredis's commands, the event channels) find
 * it. Returns what undoes it.
 */
export function follow<T extends object>(
  channel: TracingChannel<unknown, T>,
  storage: AsyncLocalStorage<Context> | undefined,
  handlers: Handlers<T>,
): () => void {
  const ops = new WeakMap<T, Operation>();
  const openOnce = (trace: T): Operation => {
    let op = ops.get(trace);
    if (!op) {
      op = handlers.open(trace, context.active());
      ops.set(trace, op);
    }
    return op;
  };
  const subscribers = {
    // Without a bound storage, the span is still made, with the right parent.
    start: (trace: T) => void openOnce(trace),
    end: () => {},
    asyncStart: () => {},
    error: () => {},
    asyncEnd: (trace: T) => {
      const op = ops.get(trace);
      if (!op) return;
      ops.delete(trace);
      try {
        handlers.close(trace, op);
      } finally {
        op.span.end();
      }
    },
  };
  // Runs before `start` is published, in the caller's context; a failure
  // here must never reach the library's caller.
  const transform = (trace: T): Context => {
    try {
      return contextOf(openOnce(trace));
    } catch {
      return context.active();
    }
  };
  if (storage) channel.start.bindStore(storage, transform);
  channel.subscribe(subscribers);
  return () => {
    channel.unsubscribe(subscribers);
    if (storage) channel.start.unbindStore(storage);
  };
}

/** Subscribes to an event channel; returns what unsubscribes. */
export function listen<M>(name: string, onMessage: (message: M) => void): () => void {
  const handler = (message: unknown) => {
    try {
      onMessage(message as M);
    } catch {
      // A metric that cannot be recorded must not break the library's work.
    }
  };
  subscribe(name, handler);
  return () => void unsubscribe(name, handler);
}
