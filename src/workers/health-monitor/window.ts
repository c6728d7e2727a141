import { performance } from 'node:perf_hooks';
import { BadInputError, ConfigError, MateriError } from '../../errors/index.js';
import { ExecutionStatus, HealthStatus } from '../../events/index.js';
import { type HttpTarget, httpTarget } from '../../runtime/http-target.js';
import type { Logger } from '../../runtime/logging.js';
import { expandReferences, type Lookup, planLookup } from '../../runtime/references.js';
import { httpGet } from './http-request.js';
import { MetricsWatcher } from './metrics-check.js';
import { PromqlWatcher } from './promql-check.js';
import { type HealthSpec, parseHealthSpec, type ServiceHealthSpec } from './spec.js';
import { downsampleEvenly } from './statistics.js';
import {
  checkFinding,
  type Finding,
  judgeProbes,
  orderFindings,
  probeFigures,
  recommendsRollback,
  statusWord,
  worseFirst,
  worstStatus,
} from './verdict.js';

/** The endpoint a probe hit. */
export type ProbeEndpoint = 'health' | 'ready';

/** One probe, as kept for the dashboard's charts (the `HealthSample` message). */
export interface HealthSampleRecord {
  /** Milliseconds from the start of the window to the start of the probe. */
  offsetMs: number;
  /** Response time, rounded to whole milliseconds; a timeout counts as the request timeout. */
  latencyMs: number;
  /** 2xx answer within the request timeout. */
  ok: boolean;
  endpoint: ProbeEndpoint;
}

/** The verdict on one service (the `ServiceHealthStatus` message). */
export interface ServiceHealth {
  service: string;
  status: HealthStatus;
  responseTimeP50Ms: number;
  responseTimeP95Ms: number;
  responseTimeMaxMs: number;
  /** Failed probes / probes, 0..1. */
  errorRate: number;
  /** Probes made (before downsampling `samples`). */
  sampleCount: number;
  /** A metrics or PromQL check was configured and every configured one passed. */
  metricsFlowing: boolean;
  /** Why the service got its status, worst finding first. */
  message: string;
  /** The probes in time order, evenly downsampled to at most `maxSamplesPerService`. */
  samples: HealthSampleRecord[];
}

/** Settings of the window actually run, after the worker's caps. */
export interface EffectiveWindow {
  intervalMs: number;
  durationMs: number;
  requestTimeoutMs: number;
}

/** Result of {@link evaluateHealthWindow}. */
export interface HealthOutcome {
  /** Worst service status; UNHEALTHY when the check ERRORED. */
  status: HealthStatus;
  /** SUCCEEDED when the window ran; ERRORED for a malformed spec or an unresolvable setting. */
  executionStatus: ExecutionStatus;
  rollbackRecommended: boolean;
  /** One line: what decided the verdict. Never holds an unredacted URL. */
  reason: string;
  services: ServiceHealth[];
  /** Wall time of the evaluation in milliseconds. */
  durationMs: number;
  /** The window that ran; undefined when the spec was rejected before it started. */
  window?: EffectiveWindow;
}

/** Options of {@link evaluateHealthWindow}. */
export interface HealthWindowOptions {
  /** Aborting stops the window at once; the evaluation then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Resolves `${NAME}` references in URLs and headers. @defaultValue the process environment */
  lookup?: Lookup;
  /**
   * Watch only these services (the event's `services` list). Each must have an entry in the
   * spec. @defaultValue every service of the spec
   */
  services?: readonly string[];
  /**
   * Time the requester waits for the result. When set (> 0), a window that, with one request
   * timeout, does not fit is rejected as a malformed spec instead of answering too late.
   * @defaultValue no check
   */
  deadlineMs?: number;
  /** Floor of the probe interval. @defaultValue 100 */
  minIntervalMs?: number;
  /** Cap of the window length. @defaultValue 3600000 (1 h) */
  maxDurationMs?: number;
  /** Cap of each request's time limit. @defaultValue 30000 */
  maxRequestTimeoutMs?: number;
  /** Samples kept per service in the result (evenly downsampled beyond). @defaultValue 600 */
  maxSamplesPerService?: number;
  logger?: Logger;
}

const WINDOW_DEFAULTS = {
  minIntervalMs: 100,
  maxDurationMs: 3_600_000,
  maxRequestTimeoutMs: 30_000,
  maxSamplesPerService: 600,
} as const;

type WindowLimits = Record<keyof typeof WINDOW_DEFAULTS, number>;

/** Merges and checks the worker's limits. Throws {@link ConfigError} naming the option. */
export function resolveWindowLimits(options: HealthWindowOptions): WindowLimits {
  const limits: WindowLimits = { ...WINDOW_DEFAULTS };
  for (const key of Object.keys(WINDOW_DEFAULTS) as (keyof WindowLimits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value <= 0) {
      throw new ConfigError(`health monitor option ${key} must be a positive integer, got ${value}`);
    }
    limits[key] = value;
  }
  return limits;
}

interface ProbeRecord extends HealthSampleRecord {
  /** Precise latency for the figures. */
  latencyExactMs: number;
  failure?: string;
}

/** A service with its references resolved and its targets built. */
interface PreparedService {
  spec: ServiceHealthSpec;
  endpoints: { endpoint: ProbeEndpoint; target: HttpTarget }[];
  metrics?: MetricsWatcher;
  promql?: PromqlWatcher;
  probes: ProbeRecord[];
}

/**
 * Watches the services of a `health:check:started` spec for one window and returns the verdict.
 *
 * Every `intervalMs` (first round one interval after the start) each service's `health` and
 * `ready` URLs are probed with `requestTimeoutMs`; after `durationMs` the window closes and the
 * probes still running are awaited. Metrics checks scrape at the start and the end; PromQL checks
 * poll from the start until their condition holds. A malformed spec or an unresolvable `${NAME}`
 * gives an ERRORED outcome (never a throw); only an abort through `options.signal` rejects.
 */
export async function evaluateHealthWindow(
  spec: unknown,
  options: HealthWindowOptions = {},
): Promise<HealthOutcome> {
  const started = performance.now();
  const limits = resolveWindowLimits(options);
  const external = options.signal ?? new AbortController().signal;
  external.throwIfAborted();

  let parsed: HealthSpec;
  let window: EffectiveWindow;
  let notes: string[];
  let services: PreparedService[];
  try {
    parsed = parseHealthSpec(spec);
    ({ window, notes } = applyLimits(parsed, limits, options.deadlineMs));
    services = prepareServices(parsed, window, options.services, options.lookup ?? planLookup());
  } catch (error) {
    if (!(error instanceof MateriError)) throw error;
    const prefix = error instanceof ConfigError ? 'cannot resolve health spec' : 'invalid health spec';
    return errored(`${prefix}: ${error.message}`, started);
  }

  const internal = new AbortController();
  const signal = AbortSignal.any([external, internal.signal]);
  const running = new Set<Promise<void>>();
  // Everything launched rejects only on abort; the abort is read from the signals afterwards.
  const launch = (work: Promise<void>) => {
    const tracked = work.catch(() => {});
    running.add(tracked);
    void tracked.then(() => running.delete(tracked));
  };
  const settle = () => Promise.all([...running]);
  const checkSpecProblems = () => {
    if (services.some((s) => s.promql?.specProblem !== undefined)) internal.abort();
  };

  options.logger?.debug({ window, services: services.map((s) => s.spec.name) }, 'health window started');
  const t0 = performance.now();
  const pollChecks = (offsetMs: number) => {
    for (const service of services) {
      if (service.metrics?.wantsBaseline()) launch(service.metrics.takeBaseline(signal));
      if (service.promql?.wantsPoll()) {
        launch(service.promql.poll(signal, offsetMs).then(checkSpecProblems));
      }
    }
  };

  try {
    pollChecks(0);
    const rounds = Math.floor(window.durationMs / window.intervalMs);
    for (let round = 1; round <= rounds; round++) {
      await sleepUntil(t0 + round * window.intervalMs, signal);
      const offsetMs = Math.round(performance.now() - t0);
      for (const service of services) {
        for (const { endpoint, target } of service.endpoints) {
          launch(probe(service, endpoint, target, window.requestTimeoutMs, offsetMs, signal));
        }
      }
      pollChecks(offsetMs);
    }
    await sleepUntil(t0 + window.durationMs, signal);
    // The closing scrape waits for the last probes, so counters they bump are in it.
    await settle();
    signal.throwIfAborted();
    for (const service of services) if (service.metrics) launch(service.metrics.takeFinal(signal));
    await settle();
  } catch (error) {
    if (!signal.aborted) throw error;
  }
  if (signal.aborted) await settle();
  external.throwIfAborted();

  const specProblem = services.find((s) => s.promql?.specProblem)?.promql?.specProblem;
  if (specProblem) return errored(`invalid health spec: ${specProblem}`, started, window);

  const results = services.map((s) => judgeService(s, parsed, window, limits.maxSamplesPerService));
  const status = worstStatus(results.map((r) => r.status));
  const outcome: HealthOutcome = {
    status,
    executionStatus: ExecutionStatus.SUCCEEDED,
    rollbackRecommended: recommendsRollback(status, parsed.rollbackOnInconclusive),
    reason: [overallReason(results, status, window), ...notes].join('; '),
    services: results,
    durationMs: Math.round(performance.now() - started),
    window,
  };
  options.logger?.debug({ status: HealthStatus[status], reason: outcome.reason }, 'health window closed');
  return outcome;
}

function errored(reason: string, started: number, window?: EffectiveWindow): HealthOutcome {
  return {
    status: HealthStatus.UNHEALTHY,
    executionStatus: ExecutionStatus.ERRORED,
    rollbackRecommended: false,
    reason,
    services: [],
    durationMs: Math.round(performance.now() - started),
    window,
  };
}

function applyLimits(
  spec: HealthSpec,
  limits: WindowLimits,
  deadlineMs: number | undefined,
): { window: EffectiveWindow; notes: string[] } {
  const notes: string[] = [];
  const window: EffectiveWindow = {
    intervalMs: Math.max(spec.intervalMs, limits.minIntervalMs),
    durationMs: Math.min(spec.durationMs, limits.maxDurationMs),
    requestTimeoutMs: Math.min(spec.requestTimeoutMs, limits.maxRequestTimeoutMs),
  };
  if (window.intervalMs !== spec.intervalMs) {
    notes.push(`intervalMs ${spec.intervalMs} raised to the worker's minimum ${window.intervalMs}`);
  }
  if (window.durationMs !== spec.durationMs) {
    notes.push(`durationMs ${spec.durationMs} capped to the worker's maximum ${window.durationMs}`);
  }
  if (window.requestTimeoutMs !== spec.requestTimeoutMs) {
    notes.push(
      `requestTimeoutMs ${spec.requestTimeoutMs} capped to the worker's maximum ${window.requestTimeoutMs}`,
    );
  }
  if (deadlineMs !== undefined && deadlineMs > 0) {
    const needed = window.durationMs + window.requestTimeoutMs;
    if (needed > deadlineMs) {
      throw new BadInputError(
        `durationMs: the window (${window.durationMs} ms) plus one request timeout (${window.requestTimeoutMs} ms) does not fit in the deadline of ${deadlineMs} ms`,
      );
    }
  }
  return { window, notes };
}

/** Picks the services to watch, resolves their `${NAME}` references and builds their targets. */
function prepareServices(
  spec: HealthSpec,
  window: EffectiveWindow,
  only: readonly string[] | undefined,
  lookup: Lookup,
): PreparedService[] {
  const indexed = spec.services.map((service, index) => ({ service, index }));
  let selected = indexed;
  if (only && only.length > 0) {
    const missing = only.filter((name) => !spec.services.some((s) => s.name === name));
    if (missing.length > 0) {
      throw new BadInputError(
        `services: ${missing.map((n) => `"${n}"`).join(', ')} listed in the event but not in spec.services`,
      );
    }
    selected = indexed.filter(({ service }) => only.includes(service.name));
  }
  return selected.map(({ service, index }) => {
    const where = `services[${index}]`;
    const resolved = expandReferences(service, lookup, { where });
    const target = (url: string, headers: Record<string, string>, field: string): HttpTarget => {
      const built = httpTarget(url, headers);
      if (!built) throw new BadInputError(`${where}.${field}: is not an http(s) URL`);
      return built;
    };
    const endpoints: PreparedService['endpoints'] = [];
    if (resolved.health) {
      endpoints.push({ endpoint: 'health', target: target(resolved.health, resolved.headers, 'health') });
    }
    if (resolved.ready) {
      endpoints.push({ endpoint: 'ready', target: target(resolved.ready, resolved.headers, 'ready') });
    }
    const metrics = resolved.metrics
      ? new MetricsWatcher(
          target(resolved.metrics.url, resolved.metrics.headers, 'metrics.url'),
          resolved.metrics,
          window.requestTimeoutMs,
        )
      : undefined;
    const promql = resolved.promql
      ? new PromqlWatcher(
          target(resolved.promql.url, resolved.promql.headers, 'promql.url'),
          resolved.promql,
          window.requestTimeoutMs,
          `${where}.promql.query`,
        )
      : undefined;
    return { spec: service, endpoints, metrics, promql, probes: [] };
  });
}

async function probe(
  service: PreparedService,
  endpoint: ProbeEndpoint,
  target: HttpTarget,
  timeoutMs: number,
  offsetMs: number,
  signal: AbortSignal,
): Promise<void> {
  const outcome = await httpGet(target, timeoutMs, signal);
  const ok = outcome.kind === 'response' && outcome.status >= 200 && outcome.status <= 299;
  const failure = ok ? undefined : outcome.kind === 'response' ? `HTTP ${outcome.status}` : outcome.failure;
  service.probes.push({
    offsetMs,
    latencyMs: Math.round(outcome.latencyMs),
    latencyExactMs: outcome.latencyMs,
    ok,
    endpoint,
    failure,
  });
}

function judgeService(
  service: PreparedService,
  spec: HealthSpec,
  window: EffectiveWindow,
  maxSamples: number,
): ServiceHealth {
  const probes = [...service.probes].sort(
    (a, b) => a.offsetMs - b.offsetMs || a.endpoint.localeCompare(b.endpoint),
  );
  const figures = probeFigures(probes.map((p) => ({ ...p, latencyMs: p.latencyExactMs })));
  const findings: Finding[] = judgeProbes(figures, spec.thresholds, spec.noData, window);
  const checks: boolean[] = [];
  if (service.metrics && service.spec.metrics) {
    const result = service.metrics.result();
    checks.push(result.passed);
    findings.push(checkFinding(result.passed, service.spec.metrics.required, result.text));
  }
  if (service.promql && service.spec.promql) {
    const result = service.promql.result();
    checks.push(result.passed);
    findings.push(checkFinding(result.passed, service.spec.promql.required, result.text));
  }
  const ordered = orderFindings(findings);
  return {
    service: service.spec.name,
    status: worstStatus(findings.map((f) => f.status)),
    responseTimeP50Ms: figures.p50Ms,
    responseTimeP95Ms: figures.p95Ms,
    responseTimeMaxMs: figures.maxMs,
    errorRate: figures.errorRate,
    sampleCount: figures.count,
    metricsFlowing: checks.length > 0 && checks.every(Boolean),
    message: ordered.map((f) => f.text).join('; '),
    samples: downsampleEvenly(probes, maxSamples).map(({ offsetMs, latencyMs, ok, endpoint }) => ({
      offsetMs,
      latencyMs,
      ok,
      endpoint,
    })),
  };
}

function overallReason(
  results: readonly ServiceHealth[],
  status: HealthStatus,
  window: EffectiveWindow,
): string {
  const over = `over a ${window.durationMs} ms window`;
  if (status === HealthStatus.HEALTHY) {
    return results.length === 1
      ? `service ${results[0]!.service} healthy ${over}`
      : `all ${results.length} services healthy ${over}`;
  }
  const troubled = results
    .filter((r) => r.status !== HealthStatus.HEALTHY)
    .sort((a, b) => worseFirst(a.status, b.status));
  const detail = troubled
    .map((r) => `${r.service} ${statusWord(r.status)} (${r.message.split('; ')[0]})`)
    .join('; ');
  return `${statusWord(status)} ${over}: ${detail}`;
}

/** Resolves at a `performance.now()` time; rejects with the signal's reason on abort. */
function sleepUntil(at: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const delay = at - performance.now();
  if (delay <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, delay);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
