import { z } from 'zod';
import { BadInputError } from '../../errors/index.js';
import { durationMs } from '../../runtime/duration.js';

/** What a service with zero completed probes gets: UNHEALTHY, HEALTHY or INCONCLUSIVE. */
export type NoDataPolicy = 'fail' | 'pass' | 'inconclusive';

/** Comparison applied to a PromQL result. */
export type ConditionOperator = '>' | '>=' | '<' | '<=' | '==' | '!=';

/** A degraded and an unhealthy limit; a figure strictly above a limit crosses it. */
export interface ThresholdPair {
  degraded: number;
  unhealthy: number;
}

/** Limits that turn probe figures into a status. */
export interface HealthThresholds {
  /** Share of failed probes, 0..1. @defaultValue `{ degraded: 0.05, unhealthy: 0.2 }` */
  errorRate: ThresholdPair;
  /** 95th percentile response time in milliseconds. @defaultValue `{ degraded: 500, unhealthy: 2000 }` */
  p95Ms: ThresholdPair;
}

/** A Prometheus series selector: a metric name and optional `label="value"` matchers. */
export interface SeriesSelector {
  /** As written in the spec, for messages. */
  text: string;
  name: string;
  labels: Record<string, string>;
}

/** Scrape check of a service's own `/metrics` endpoint. */
export interface MetricsCheckSpec {
  /** Exposition URL; may hold `${NAME}` references. */
  url: string;
  /** Series that must be present at the end of the window. @defaultValue none */
  series: SeriesSelector[];
  /** Counters that must have grown over the window (they must be present too). @defaultValue none */
  increasing: SeriesSelector[];
  /** A failing check makes the service UNHEALTHY instead of DEGRADED. @defaultValue false */
  required: boolean;
  /** Extra request headers; values may hold `${NAME}` references. @defaultValue none */
  headers: Record<string, string>;
}

/** A PromQL query against a Prometheus server that must satisfy a condition during the window. */
export interface PromqlCheckSpec {
  /** Prometheus base URL (`http://prometheus:9090`); may hold `${NAME}` references. */
  url: string;
  /** Instant query, e.g. `sum(rate(http_requests_total[1m]))`. */
  query: string;
  condition: { op: ConditionOperator; value: number };
  /** A condition that never holds makes the service UNHEALTHY instead of DEGRADED. @defaultValue false */
  required: boolean;
  /** Extra request headers; values may hold `${NAME}` references. @defaultValue none */
  headers: Record<string, string>;
}

/** One service to watch. */
export interface ServiceHealthSpec {
  name: string;
  /** Liveness URL; may hold `${NAME}` references. At least one of `health` and `ready` is set. */
  health?: string;
  /** Readiness URL; may hold `${NAME}` references. */
  ready?: string;
  /** Extra headers for the health and ready probes. @defaultValue none */
  headers: Record<string, string>;
  metrics?: MetricsCheckSpec;
  promql?: PromqlCheckSpec;
}

/** The validated `spec` of a `health:check:started` event, with defaults filled in. */
export interface HealthSpec {
  /** Time between probe rounds. @defaultValue 1000 */
  intervalMs: number;
  /** Length of the window. @defaultValue 30000 */
  durationMs: number;
  /** Limit of each request. @defaultValue 2000 */
  requestTimeoutMs: number;
  thresholds: HealthThresholds;
  /** @defaultValue `fail` */
  noData: NoDataPolicy;
  /** Recommend a rollback when the verdict is INCONCLUSIVE. @defaultValue false */
  rollbackOnInconclusive: boolean;
  services: ServiceHealthSpec[];
}

/** Defaults of the spec, in one place (the docs' table repeats them). */
export const HEALTH_SPEC_DEFAULTS = {
  intervalMs: 1000,
  durationMs: 30_000,
  requestTimeoutMs: 2000,
  thresholds: {
    errorRate: { degraded: 0.05, unhealthy: 0.2 },
    p95Ms: { degraded: 500, unhealthy: 2000 },
  },
  noData: 'fail',
  rollbackOnInconclusive: false,
} as const satisfies Omit<HealthSpec, 'services'>;

/** Milliseconds from a number of milliseconds or a string like `500ms`, `30s`, `5m`, `1h`. */
export const parseDurationMs = durationMs;

const duration = z.unknown().transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected milliseconds or a duration like "500ms", "30s", "5m", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const positiveDuration = duration.refine((ms) => ms > 0, 'must be more than 0 ms');

const SELECTOR = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/;
const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$/;

/** Parses `name` or `name{label="value",…}`; undefined when it is neither. */
function parseSelector(text: string): SeriesSelector | undefined {
  const match = SELECTOR.exec(text.trim());
  if (!match) return undefined;
  const labels: Record<string, string> = {};
  const body = match[2]?.trim();
  if (body) {
    // Label values rarely hold commas; a quoted comma is kept by splitting only outside quotes.
    for (const part of body.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
      if (part.trim() === '') continue;
      const matcher = MATCHER.exec(part);
      if (!matcher) return undefined;
      labels[matcher[1]!] = matcher[2]!.replace(/\\(.)/g, '$1');
    }
  }
  return { text: text.trim(), name: match[1]!, labels };
}

const selector = z.string().transform((text, ctx) => {
  const parsed = parseSelector(text);
  if (!parsed) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a series name with optional label="value" matchers, got ${JSON.stringify(text)}`,
    });
    return z.NEVER;
  }
  return parsed;
});

const url = z.string().trim().min(1, 'must not be empty');
const headers = z.record(z.string(), z.string()).default({});

const pair = (limit: z.ZodType<number>) =>
  z.strictObject({ degraded: limit.optional(), unhealthy: limit.optional() }).optional();

const ratio = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');

const metricsCheck = z.preprocess(
  (value) => (typeof value === 'string' ? { url: value } : value),
  z.strictObject({
    url,
    series: z.array(selector).default([]),
    increasing: z.array(selector).default([]),
    required: z.boolean().default(false),
    headers,
  }),
);

const promqlCheck = z.strictObject({
  url,
  query: z.string().trim().min(1, 'must not be empty'),
  condition: z.strictObject({
    op: z.enum(['>', '>=', '<', '<=', '==', '!=']),
    value: z.number(),
  }),
  required: z.boolean().default(false),
  headers,
});

const service = z
  .strictObject({
    name: z.string().trim().min(1, 'must not be empty'),
    health: url.optional(),
    ready: url.optional(),
    headers,
    metrics: metricsCheck.optional(),
    promql: promqlCheck.optional(),
  })
  .refine((s) => s.health !== undefined || s.ready !== undefined, {
    message: 'needs a health or a ready URL',
  });

const schema = z
  .strictObject({
    intervalMs: positiveDuration.optional(),
    durationMs: duration.optional(),
    requestTimeoutMs: positiveDuration.optional(),
    thresholds: z.strictObject({ errorRate: pair(ratio), p95Ms: pair(duration) }).optional(),
    noData: z.enum(['fail', 'pass', 'inconclusive']).optional(),
    rollbackOnInconclusive: z.boolean().optional(),
    services: z.array(service).min(1, 'must list at least one service'),
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    spec.services.forEach((s, i) => {
      if (seen.has(s.name)) {
        ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate "${s.name}"` });
      }
      seen.add(s.name);
    });
  });

/** `services[0].metrics.url` from a zod issue path. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const at = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `${at ? `${at}: ` : ''}unknown setting${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  return `${at || 'spec'}: ${message}`;
}

/**
 * Validates the `spec` of a `health:check:started` event and fills in the defaults. Throws
 * {@link BadInputError} whose message names the first bad field (`services[1].promql.condition.op:
 * …`) and never echoes a URL.
 */
export function parseHealthSpec(spec: unknown): HealthSpec {
  if (spec === undefined || spec === null) throw new BadInputError('spec: is missing');
  const parsed = schema.safeParse(spec, { reportInput: true });
  if (!parsed.success) throw new BadInputError(describeIssue(parsed.error.issues[0]!));
  const v = parsed.data;
  const defaults = HEALTH_SPEC_DEFAULTS;
  const thresholds: HealthThresholds = {
    errorRate: { ...defaults.thresholds.errorRate, ...definedOnly(v.thresholds?.errorRate) },
    p95Ms: { ...defaults.thresholds.p95Ms, ...definedOnly(v.thresholds?.p95Ms) },
  };
  for (const name of ['errorRate', 'p95Ms'] as const) {
    const { degraded, unhealthy } = thresholds[name];
    if (degraded > unhealthy) {
      throw new BadInputError(
        `thresholds.${name}: degraded limit ${degraded} is above the unhealthy limit ${unhealthy}`,
      );
    }
  }
  return {
    intervalMs: v.intervalMs ?? defaults.intervalMs,
    durationMs: v.durationMs ?? defaults.durationMs,
    requestTimeoutMs: v.requestTimeoutMs ?? defaults.requestTimeoutMs,
    thresholds,
    noData: v.noData ?? defaults.noData,
    rollbackOnInconclusive: v.rollbackOnInconclusive ?? defaults.rollbackOnInconclusive,
    services: v.services.map((s) => ({
      name: s.name,
      health: s.health,
      ready: s.ready,
      headers: s.headers,
      metrics: s.metrics,
      promql: s.promql,
    })),
  };
}

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
