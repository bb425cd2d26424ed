import {
  metrics,
  SpanKind,
  trace,
  type Attributes,
  type Context,
  type MeterProvider,
  type TracerProvider,
} from '@opentelemetry/api';
import {
  channelNames,
  type LockAcquireEvent,
  type LockReleaseEvent,
  type TransactionStartEvent,
} from '../diagnostics/redis-tx.channels.js';
import { tracing } from '../diagnostics/redis-tx.tracing.js';
import { contextStorage } from './context-storage.js';
import { follow, listen } from './follow-channels.js';
import { activeOperation, operationIn, type Operation } from './operation.js';
import { closeAcquire, closeHold, closeTransaction } from './record-outcomes.js';
import { attributeNames as at, lockAttributes, metricAttributes } from './redis-tx.attributes.js';
import { createInstruments } from './redis-tx.metrics.js';

/** Options of {@link registerRedisTxInstrumentation}. */
export interface RedisTxInstrumentationOptions {
  /** Where spans go. Default: the global tracer provider. */
  tracerProvider?: TracerProvider;
  /** Where metrics go. Default: the global meter provider. */
  meterProvider?: MeterProvider;
}

/** Stops recording: unsubscribes from every channel. Calling it again does nothing. */
export type UnregisterRedisTxInstrumentation = () => void;

const scope = 'nestjs-redis-tx';

/** How many released keys are remembered for the hand-off latency, at most. */
const maxReleasedKeys = 10_000;

/**
 * Records the library's locks and transactions with OpenTelemetry: spans
 * `lock.acquire`, `lock.hold` and `transaction`, nested through the active
 * context, and the metrics listed in `metricNames`. Reads the library's
 * `node:diagnostics_channel` channels, so it works for every module of the
 * process, whichever build (ES module or CommonJS) loaded it.
 *
 * Register the SDK's context manager first (the Node SDK does): Redis
 * commands are nested under the library's spans only when the global
 * context manager is an `AsyncLocalStorageContextManager`. Register once
 * per process: a second registration would take the first one's place in
 * that context manager's storage.
 *
 * @returns A function that unsubscribes everything.
 */
export function registerRedisTxInstrumentation(
  options: RedisTxInstrumentationOptions = {},
): UnregisterRedisTxInstrumentation {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(scope);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(scope);
  const m = createInstruments(meter);
  const storage = contextStorage();
  const released = new Map<string, number>();

  const open = (
    kind: Operation['kind'],
    spanName: string,
    attributes: Attributes,
    parent: Context,
  ): Operation => ({
    kind,
    span: tracer.startSpan(spanName, { kind: SpanKind.INTERNAL, attributes }, parent),
    parent,
    started: performance.now(),
    attributes,
    waiting: false,
    attempts: 0,
    conflicts: 0,
  });

  const stops = [
    follow(tracing.lockAcquire, storage, {
      open: (trace, parent) => open('acquire', 'lock.acquire', lockAttributes(trace), parent),
      close: (trace, op) => closeAcquire(trace, op, m),
    }),
    follow(tracing.lockHold, storage, {
      // A hold outlives its acquisition: it is its sibling, not its child.
      open: (trace, active) => {
        const acquiring = operationIn(active);
        const parent = acquiring?.kind === 'acquire' ? acquiring.parent : active;
        return open('hold', 'lock.hold', lockAttributes(trace), parent);
      },
      close: (trace, op) => closeHold(trace, op, m),
    }),
    follow(tracing.transaction, storage, {
      open: (trace, parent) =>
        open(
          'transaction',
          'transaction',
          { [at.name]: trace.name, [at.transactionWatched]: trace.watched },
          parent,
        ),
      close: (trace, op) => closeTransaction(trace, op, m, storage !== undefined),
    }),
    listen(channelNames.lockWait, () => {
      const op = activeOperation('acquire');
      if (!op || op.waiting) return;
      op.waiting = true;
      m.lockWaiters.add(1, metricAttributes(op.attributes));
    }),
    listen<LockAcquireEvent>(channelNames.lockAcquire, ({ keys, wokenBy }) => {
      const op = activeOperation('acquire');
      op?.span.setAttribute(at.lockWokenBy, wokenBy);
      // One hand-off per grant, from the last release among its keys.
      let lastRelease: number | undefined;
      for (const key of keys) {
        const releasedAt = released.get(key);
        if (releasedAt === undefined) continue;
        released.delete(key);
        lastRelease = Math.max(lastRelease ?? releasedAt, releasedAt);
      }
      if (wokenBy === 'release' && op && lastRelease !== undefined) {
        m.lockHandOff.record(performance.now() - lastRelease, metricAttributes(op.attributes));
      }
    }),
    listen<LockReleaseEvent>(channelNames.lockRelease, ({ keys, released: letGo }) => {
      if (!letGo) return;
      const now = performance.now();
      for (const key of keys) {
        released.delete(key);
        released.set(key, now);
      }
      // Keys released and never taken again: forget the oldest.
      while (released.size > maxReleasedKeys) released.delete(released.keys().next().value!);
    }),
    listen(channelNames.lockRenew, () => {
      const op = activeOperation('hold');
      m.lockRenewals.add(1, op ? metricAttributes(op.attributes) : {});
    }),
    listen<TransactionStartEvent>(channelNames.transactionStart, ({ attempt }) => {
      const op = activeOperation('transaction');
      if (op) op.attempts = attempt;
    }),
    listen(channelNames.transactionConflict, () => {
      const op = activeOperation('transaction');
      if (!op) return;
      op.conflicts++;
      m.transactionConflicts.add(1, { [at.name]: op.attributes[at.name] });
    }),
  ];
  let registered = true;
  return () => {
    if (!registered) return;
    registered = false;
    for (const stop of stops) stop();
    released.clear();
  };
}
