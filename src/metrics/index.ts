/** Prometheus metrics (prom-client), fed from typed events: they stay out of control flow. */
export type {
  ApiRequestEvent,
  CascadeLinkEvent,
  CascadeSessionEvent,
  ChairEvent,
  MeteredDriver,
  Metrics,
  MetricsOptions,
  QualityEvent,
  QualityFigures,
  TransactionEvent,
} from './metrics.js';
export { createMetrics } from './metrics.js';
