import { createRequire } from 'node:module';
import type { HttpTarget } from '../../runtime/http-target.js';
import { httpGet } from './http-request.js';
import type { MetricsCheckSpec, SeriesSelector } from './spec.js';

/** A metric family as `parse-prometheus-text-format` returns it (values are strings). */
interface MetricFamily {
  name: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

// The package ships no type declarations; loading it through require keeps its typing here
// instead of in a project-wide ambient module declaration.
const parseExposition = createRequire(import.meta.url)('parse-prometheus-text-format') as (
  text: string,
) => MetricFamily[];

/** Accept header asking for the classic text format (not OpenMetrics or protobuf). */
const TEXT_FORMAT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';

type Scrape = { ok: true; families: MetricFamily[] } | { ok: false; failure: string };

/** What a metrics check concluded. */
export interface MetricsCheckResult {
  passed: boolean;
  /** One clause for the service message, e.g. `metrics flowing (http_requests_total +24)`. */
  text: string;
}

/**
 * Scrapes a service's exposition endpoint at the start and at the end of the window and checks
 * the named series: present at the end, and the `increasing` ones grown since the start. When the
 * first scrape fails, the window keeps retrying at each probe round until one succeeds, so a
 * service that comes up a little late still gets a baseline.
 */
export class MetricsWatcher {
  private baseline: MetricFamily[] | undefined;
  private final: Scrape | undefined;
  private lastFailure: string | undefined;
  private inFlight = false;

  constructor(
    private readonly target: HttpTarget,
    private readonly spec: MetricsCheckSpec,
    private readonly timeoutMs: number,
  ) {}

  /** Whether a baseline is still missing and no scrape is running. */
  wantsBaseline(): boolean {
    return this.baseline === undefined && !this.inFlight;
  }

  /** Tries to take the baseline scrape. Rejects only when `signal` aborts. */
  async takeBaseline(signal: AbortSignal): Promise<void> {
    if (!this.wantsBaseline()) return;
    this.inFlight = true;
    try {
      const scrape = await this.scrape(signal);
      if (scrape.ok) this.baseline = scrape.families;
      else this.lastFailure = scrape.failure;
    } finally {
      this.inFlight = false;
    }
  }

  /** Takes the closing scrape. Rejects only when `signal` aborts. */
  async takeFinal(signal: AbortSignal): Promise<void> {
    this.final = await this.scrape(signal);
  }

  result(): MetricsCheckResult {
    const final = this.final;
    if (final === undefined || !final.ok) {
      const failure = final?.failure ?? this.lastFailure ?? 'not scraped';
      return { passed: false, text: `metrics endpoint ${this.target.display} failed: ${failure}` };
    }
    const wanted = uniqueSelectors([...this.spec.series, ...this.spec.increasing]);
    const missing = wanted.filter((s) => selectValues(final.families, s).size === 0);
    if (missing.length > 0) {
      return { passed: false, text: `metrics missing series ${missing.map((s) => s.text).join(', ')}` };
    }
    if (this.spec.increasing.length === 0) {
      const total = final.families.reduce((n, f) => n + f.metrics.length, 0);
      if (total === 0)
        return { passed: false, text: `metrics endpoint ${this.target.display} exposes no samples` };
      return {
        passed: true,
        text:
          wanted.length > 0 ? `metrics present (${wanted.map((s) => s.text).join(', ')})` : 'metrics exposed',
      };
    }
    if (!this.baseline) {
      return {
        passed: false,
        text: `metrics: no scrape succeeded before the end of the window (${this.lastFailure ?? 'unknown'}), cannot tell whether ${this.spec.increasing.map((s) => s.text).join(', ')} grew`,
      };
    }
    const growth = this.spec.increasing.map((s) => ({
      selector: s,
      ...counterGrowth(this.baseline!, final.families, s),
    }));
    const flat = growth.filter((g) => !(g.increase > 0));
    if (flat.length > 0) {
      const detail = flat.map((g) => `${g.selector.text} stayed at ${formatNumber(g.endTotal)}`).join(', ');
      return { passed: false, text: `metrics not flowing: ${detail}` };
    }
    const detail = growth
      .map((g) => `${g.selector.text} +${formatNumber(g.increase)}${g.reset ? ' after a reset' : ''}`)
      .join(', ');
    return { passed: true, text: `metrics flowing (${detail})` };
  }

  private async scrape(signal: AbortSignal): Promise<Scrape> {
    const outcome = await httpGet(this.target, this.timeoutMs, signal, TEXT_FORMAT);
    if (outcome.kind === 'failure') return { ok: false, failure: outcome.failure };
    if (outcome.status < 200 || outcome.status > 299) return { ok: false, failure: `HTTP ${outcome.status}` };
    try {
      return { ok: true, families: parseExposition(outcome.body) };
    } catch (error) {
      return { ok: false, failure: `unparseable exposition (${(error as Error).message.slice(0, 80)})` };
    }
  }
}

function uniqueSelectors(selectors: SeriesSelector[]): SeriesSelector[] {
  const seen = new Map<string, SeriesSelector>();
  for (const s of selectors) if (!seen.has(s.text)) seen.set(s.text, s);
  return [...seen.values()];
}

function sampleValue(text: string | undefined): number {
  if (text === undefined) return Number.NaN;
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/**
 * Values of the samples a selector matches, keyed by their label set. Understands the families
 * the parser folds together: `x_count`, `x_sum` and `x_bucket{le="…"}` of a histogram or summary
 * `x` (a bare `x` then means its count).
 */
function selectValues(families: readonly MetricFamily[], selector: SeriesSelector): Map<string, number> {
  const values = new Map<string, number>();
  const { le, ...labelMatchers } = selector.labels;
  for (const family of families) {
    const folded = family.type === 'HISTOGRAM' || family.type === 'SUMMARY';
    let pick: ((m: MetricFamily['metrics'][number]) => number) | undefined;
    let matchers = selector.labels;
    if (family.name === selector.name) {
      pick = folded ? (m) => sampleValue(m.count) : (m) => sampleValue(m.value);
    } else if (folded && selector.name === `${family.name}_count`) {
      pick = (m) => sampleValue(m.count);
    } else if (folded && selector.name === `${family.name}_sum`) {
      pick = (m) => sampleValue(m.sum);
    } else if (family.type === 'HISTOGRAM' && selector.name === `${family.name}_bucket`) {
      matchers = labelMatchers;
      pick = (m) => sampleValue(m.buckets?.[le ?? '+Inf'] ?? (le === undefined ? m.count : undefined));
    }
    if (!pick) continue;
    for (const metric of family.metrics) {
      const labels = metric.labels ?? {};
      if (!Object.entries(matchers).every(([k, v]) => labels[k] === v)) continue;
      const value = pick(metric);
      if (Number.isNaN(value)) continue;
      values.set(labelKey(labels), value);
    }
  }
  return values;
}

function labelKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
}

/**
 * How much a counter grew between two scrapes, summed over its label sets. A label set whose
 * value went down was reset (the process restarted) and counts from zero, as PromQL's
 * `increase()` does; one that appeared during the window counts its whole value.
 */
function counterGrowth(
  start: readonly MetricFamily[],
  end: readonly MetricFamily[],
  selector: SeriesSelector,
): { increase: number; endTotal: number; reset: boolean } {
  const before = selectValues(start, selector);
  const after = selectValues(end, selector);
  let increase = 0;
  let endTotal = 0;
  let reset = false;
  for (const [key, value] of after) {
    endTotal += value;
    const previous = before.get(key) ?? 0;
    if (value < previous) {
      reset = true;
      increase += value;
    } else {
      increase += value - previous;
    }
  }
  return { increase, endTotal, reset };
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}
