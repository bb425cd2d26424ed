import { Logger } from '@nestjs/common';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { registerRedisTxInstrumentation } from '../../lib/otel/index.js';

/**
 * The library's metrics at http://127.0.0.1:<port>/metrics (Prometheus),
 * and its spans through the global tracer provider, if an SDK set one.
 * Returns what stops it all; call it after the app has closed, so that the
 * locks released at shutdown are counted.
 */
export function startTelemetry(port: number): () => Promise<void> {
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const meterProvider = new MeterProvider({
    readers: [new PrometheusExporter({ host: '127.0.0.1', port })],
  });
  const unregister = registerRedisTxInstrumentation({ meterProvider });
  new Logger('sample-app').log(`Metrics at http://127.0.0.1:${port}/metrics`);
  return async () => {
    unregister();
    await meterProvider.shutdown();
    context.disable();
  };
}
