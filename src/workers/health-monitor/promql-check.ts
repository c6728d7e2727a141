import type { HttpTarget } from '../../runtime/http-target.js';
import { httpGet } from './http-request.js';
import type { ConditionOperator, PromqlCheckSpec } from './spec.js';

/** What a PromQL check concluded. */
export interface PromqlCheckResult {
  passed: boolean;
  /** One clause for the service message. */
  text: string;
}

interface PrometheusAnswer {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

type Sample = [number, string];

/**
 * Runs an instant query against Prometheus' HTTP API (`GET /api/v1/query`) at the start of the
 * window and at each probe round until its condition holds. A vector holds when it has at least
 * one sample and every sample satisfies the condition; a scalar when its value does. NaN never
 * satisfies a condition.
 */
export class PromqlWatcher {
  private held: { offsetMs: number; value: string } | undefined;
  private lastValue: string | undefined;
  private lastFailure: string | undefined;
  private inFlight = false;
  private polls = 0;
  /** Set when Prometheus says the query itself is wrong: no point polling further. */
  specProblem: string | undefined;

  constructor(
    private readonly target: HttpTarget,
    private readonly spec: PromqlCheckSpec,
    private readonly timeoutMs: number,
    /** Field path of the query in the spec, for the spec-problem message. */
    private readonly field: string,
  ) {}

  /** Whether another poll is useful now. */
  wantsPoll(): boolean {
    return !this.held && !this.inFlight && this.specProblem === undefined;
  }

  /** Queries once. Rejects only when `signal` aborts. */
  async poll(signal: AbortSignal, offsetMs: number): Promise<void> {
    if (!this.wantsPoll()) return;
    this.inFlight = true;
    this.polls++;
    try {
      const outcome = await httpGet(this.queryTarget(), this.timeoutMs, signal, 'application/json');
      if (outcome.kind === 'failure') {
        this.lastFailure = `Prometheus ${this.target.display} unreachable: ${outcome.failure}`;
        return;
      }
      let answer: PrometheusAnswer;
      try {
        answer = JSON.parse(outcome.body) as PrometheusAnswer;
      } catch {
        this.lastFailure = `Prometheus ${this.target.display} answered HTTP ${outcome.status} with no JSON`;
        return;
      }
      if (answer.status !== 'success') {
        const error = `${answer.errorType ?? 'error'}: ${(answer.error ?? '').slice(0, 200)}`;
        if (answer.errorType === 'bad_data') {
          this.specProblem = `${this.field}: Prometheus rejected the query (${error})`;
        } else {
          this.lastFailure = `Prometheus answered HTTP ${outcome.status} (${error})`;
        }
        return;
      }
      this.lastFailure = undefined;
      this.evaluate(answer.data ?? {}, offsetMs);
    } finally {
      this.inFlight = false;
    }
  }

  result(): PromqlCheckResult {
    const { op, value } = this.spec.condition;
    const condition = `${op} ${value}`;
    if (this.held) {
      return {
        passed: true,
        text: `promql held after ${this.held.offsetMs} ms (${this.held.value} ${condition})`,
      };
    }
    const query = this.spec.query.length > 100 ? `${this.spec.query.slice(0, 97)}...` : this.spec.query;
    const last = this.lastFailure ?? `last value ${this.lastValue ?? 'none'}`;
    return {
      passed: false,
      text: `promql never held in ${this.polls} polls: ${query} ${condition}, ${last}`,
    };
  }

  private queryTarget(): HttpTarget {
    const url = new URL(this.target.url);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/query`;
    url.searchParams.set('query', this.spec.query);
    return { ...this.target, url: url.toString() };
  }

  private evaluate(data: NonNullable<PrometheusAnswer['data']>, offsetMs: number): void {
    const { op, value } = this.spec.condition;
    if (data.resultType === 'scalar') {
      const [, text] = data.result as Sample;
      this.lastValue = text;
      if (compare(op, parseValue(text), value)) this.held = { offsetMs, value: text };
      return;
    }
    if (data.resultType === 'vector') {
      const samples = (data.result as { metric: Record<string, string>; value: Sample }[]) ?? [];
      if (samples.length === 0) {
        this.lastValue = 'none (empty vector)';
        return;
      }
      const failing = samples.find((s) => !compare(op, parseValue(s.value[1]), value));
      const shown = failing ?? samples[0]!;
      const series = samples.length > 1 ? `${describeSeries(shown.metric)} ` : '';
      this.lastValue = `${series}${shown.value[1]}${samples.length > 1 ? ` (of ${samples.length} series)` : ''}`;
      if (!failing) this.held = { offsetMs, value: this.lastValue };
      return;
    }
    this.specProblem = `${this.field}: the query returns a ${data.resultType ?? 'unknown'} result; use one that returns an instant vector or a scalar`;
  }
}

function describeSeries(metric: Record<string, string>): string {
  const labels = Object.entries(metric)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  return `{${labels}}`;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/** Applies a condition; NaN satisfies none, `!=` included, since it means "no meaningful value". */
export function compare(op: ConditionOperator, actual: number, expected: number): boolean {
  if (Number.isNaN(actual)) return false;
  switch (op) {
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
  }
}
