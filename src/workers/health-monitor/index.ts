/**
 * The health monitor (Printery worker, group `printery-health-monitor`): watches deployed
 * services for a window — health and ready probes, response times, error rate, Prometheus
 * metrics — and answers `health:check:started` with a `health:check:completed` verdict.
 * See docs/workers/health-monitor.md.
 *
 * @module
 */
export {
  createHealthMonitorHandler,
  HEALTH_MONITOR_GROUP,
  HEALTH_MONITOR_INPUT_TYPE,
  type HealthMonitorOptions,
} from './handler.js';
export {
  type ConditionOperator,
  HEALTH_SPEC_DEFAULTS,
  type HealthSpec,
  type HealthThresholds,
  type MetricsCheckSpec,
  type NoDataPolicy,
  type PromqlCheckSpec,
  parseDurationMs,
  parseHealthSpec,
  type SeriesSelector,
  type ServiceHealthSpec,
  type ThresholdPair,
} from './spec.js';
export {
  type EffectiveWindow,
  evaluateHealthWindow,
  type HealthOutcome,
  type HealthSampleRecord,
  type HealthWindowOptions,
  type ProbeEndpoint,
  type ServiceHealth,
} from './window.js';
