import { tracingChannel } from 'node:diagnostics_channel';
import { context, type Attributes, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { registerRedisTxInstrumentation } from '../../lib/otel/index.js';

/** A reader the test collects from when it wants, rather than on a timer. */
class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** The ioredis 6 tracing channels: one per command, and one per MULTI … EXEC batch. */
export const ioredisChannels = ['ioredis:command', 'ioredis:batch'] as const;

interface IoredisTrace {
  command?: string;
  batchMode?: string;
}

export interface OtelBed {
  /** Spans of this test that have ended. */
  spans(): ReadableSpan[];
  /** The library's spans (the test's own and ioredis's left out). */
  librarySpans(): ReadableSpan[];
  /** Runs `fn` under a span of the test's, as a request handler would. */
  inRequest<T>(fn: () => Promise<T>): Promise<{ value: T; request: Span }>;
  /** Collects the metrics recorded so far; `sum` and `histogram` read the last collection. */
  collect(): Promise<void>;
  /** The sum of a counter's points whose attributes include `attributes`. */
  sum(name: string, attributes?: Attributes): number;
  /** The points of a metric, from the last collection. */
  points(name: string): DataPoint<unknown>[];
  /** The histogram point whose attributes include `attributes`. */
  histogram(name: string, attributes?: Attributes): Histogram | undefined;
  unregister(): void;
  /** The providers the instrumentation records to, for a test that registers it itself. */
  readonly tracerProvider: BasicTracerProvider;
  readonly meterProvider: MeterProvider;
}

/**
 * The OpenTelemetry SDK for real: a tracer provider exporting to memory, the
 * AsyncLocalStorage context manager as the global one, a meter provider
 * with a collecting reader, and spans made from ioredis's own tracing
 * channels (each command a child of whatever span is active when ioredis
 * publishes its start). Unless `register` is false, the library's
 * instrumentation is registered before each test and unregistered after
 * it; each test gets a fresh meter provider.
 */
export function useOtel({ register = true } = {}): OtelBed {
  const contextManager = new AsyncLocalStorageContextManager();
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = tracerProvider.getTracer('test');
  let reader: CollectingReader | undefined;
  let meterProvider: MeterProvider | undefined;
  let collected = new Map<string, DataPoint<unknown>[]>();
  let unregister: (() => void) | undefined;

  const redisSpans = new WeakMap<object, Span>();
  const redisSubscribers = {
    start: (message: IoredisTrace) => {
      const name = message.command ?? `batch ${message.batchMode}`;
      redisSpans.set(message, tracer.startSpan(`redis ${name}`, {}, context.active()));
    },
    end: () => {},
    asyncStart: () => {},
    error: () => {},
    asyncEnd: (message: IoredisTrace) => redisSpans.get(message)?.end(),
  };
  const ioredis = ioredisChannels.map((name) => tracingChannel<unknown, IoredisTrace>(name));

  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
    for (const channel of ioredis) channel.subscribe(redisSubscribers);
  });
  afterAll(() => {
    for (const channel of ioredis) channel.unsubscribe(redisSubscribers);
    context.disable();
  });
  beforeEach(() => {
    exporter.reset();
    reader = new CollectingReader();
    meterProvider = new MeterProvider({ readers: [reader] });
    collected = new Map();
    if (register) unregister = registerRedisTxInstrumentation({ tracerProvider, meterProvider });
  });
  afterEach(() => {
    unregister?.();
    unregister = undefined;
  });

  const matching = (name: string, attributes: Attributes) =>
    (collected.get(name) ?? []).filter((point) =>
      Object.entries(attributes).every(([key, value]) => point.attributes[key] === value),
    );

  return {
    spans: () => exporter.getFinishedSpans(),
    librarySpans: () =>
      exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'nestjs-redis-tx'),
    inRequest: (fn) =>
      tracer.startActiveSpan('request', async (request) => {
        try {
          return { value: await fn(), request };
        } finally {
          request.end();
        }
      }),
    async collect() {
      const { resourceMetrics } = await reader!.collect();
      collected = new Map();
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          collected.set(metric.descriptor.name, metric.dataPoints as DataPoint<unknown>[]);
        }
      }
    },
    points: (name) => collected.get(name) ?? [],
    sum: (name, attributes = {}) =>
      matching(name, attributes).reduce((total, point) => total + (point.value as number), 0),
    histogram: (name, attributes = {}) =>
      matching(name, attributes)[0]?.value as Histogram | undefined,
    unregister: () => {
      unregister?.();
      unregister = undefined;
    },
    tracerProvider,
    get meterProvider() {
      if (!meterProvider) throw new Error('useOtel: the meter provider is made in beforeEach');
      return meterProvider;
    },
  };
}

/** The id of the span's parent, if it has one. */
export function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** The spans named `name`. */
export function named(spans: readonly ReadableSpan[], name: string): ReadableSpan[] {
  return spans.filter((span) => span.name === name);
}
