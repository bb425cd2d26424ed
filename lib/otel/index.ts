/**
 * `nestjs-redis-tx/otel`: spans and metrics for the library's locks and
 * transactions, with OpenTelemetry (`npm install @opentelemetry/api`, an
 * optional peer dependency that only this entry loads).
 * @module
 */
export {
  registerRedisTxInstrumentation,
  type RedisTxInstrumentationOptions,
  type UnregisterRedisTxInstrumentation,
} from './redis-tx.instrumentation.js';
export { RedisTxOtelModule } from './redis-tx-otel.module.js';
export { metricNames } from './redis-tx.metrics.js';
export { attributeNames } from './redis-tx.attributes.js';
