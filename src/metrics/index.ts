/** Prometheus metrics (prom-client), fed from typed events: they stay out of control flow. */
export type {
  ApiRequestEvent,
  CascadeLinkEvent,
  CascadeSessionEvent,
  ChairEvent,
  MeteredDriver,
  MeteredQuality,
  Metrics,
  MetricsOptions,
  TransactionEvent,
} from './metrics.js';
export { createMetrics } from './metrics.js';
