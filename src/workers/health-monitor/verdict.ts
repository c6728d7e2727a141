import { HealthStatus } from '../../events/index.js';
import type { HealthThresholds, NoDataPolicy } from './spec.js';
import { percentile, round2 } from './statistics.js';

/**
 * Severity order used for "the worst status wins". INCONCLUSIVE sits between DEGRADED and
 * UNHEALTHY: not knowing is worse than a warning, but it is not evidence of failure.
 */
const SEVERITY: Record<HealthStatus, number> = {
  [HealthStatus.UNSPECIFIED]: -1,
  [HealthStatus.HEALTHY]: 0,
  [HealthStatus.DEGRADED]: 1,
  [HealthStatus.INCONCLUSIVE]: 2,
  [HealthStatus.UNHEALTHY]: 3,
};

/** The worse of statuses; HEALTHY for none. */
export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst = HealthStatus.HEALTHY;
  for (const status of statuses) if (SEVERITY[status] > SEVERITY[worst]) worst = status;
  return worst;
}

export function statusWord(status: HealthStatus): string {
  return HealthStatus[status]!.toLowerCase();
}

/** One conclusion about a service, with the clause that explains it. */
export interface Finding {
  status: HealthStatus;
  text: string;
}

/** Sort comparator putting the worse status first. */
export function worseFirst(a: HealthStatus, b: HealthStatus): number {
  return SEVERITY[b] - SEVERITY[a];
}

/** Findings ordered worst first, so a message starts with what decided the status. */
export function orderFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => worseFirst(a.status, b.status));
}

/** Figures over the probes of one service. */
export interface ProbeFigures {
  count: number;
  errors: number;
  /** Share of failed probes, 0..1. */
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Failure kind (`HTTP 500`, `timeout after 2000 ms`, `ECONNREFUSED`) → count, per endpoint. */
  failures: Map<string, number>;
}

/**
 * Percentiles are over every completed probe, failed ones included (a timeout counts as the
 * request timeout), so a service that times out cannot look fast.
 */
export function probeFigures(
  probes: readonly { latencyMs: number; ok: boolean; endpoint: string; failure?: string }[],
): ProbeFigures {
  const latencies = probes.map((p) => p.latencyMs).sort((a, b) => a - b);
  const failures = new Map<string, number>();
  let errors = 0;
  for (const probe of probes) {
    if (probe.ok) continue;
    errors++;
    const key = `${probe.endpoint} ${probe.failure ?? 'failed'}`;
    failures.set(key, (failures.get(key) ?? 0) + 1);
  }
  return {
    count: probes.length,
    errors,
    errorRate: probes.length === 0 ? 0 : errors / probes.length,
    p50Ms: round2(percentile(latencies, 50)),
    p95Ms: round2(percentile(latencies, 95)),
    maxMs: round2(latencies.at(-1) ?? 0),
    failures,
  };
}

const NO_DATA_STATUS: Record<NoDataPolicy, HealthStatus> = {
  fail: HealthStatus.UNHEALTHY,
  pass: HealthStatus.HEALTHY,
  inconclusive: HealthStatus.INCONCLUSIVE,
};

/** Judges the probe figures against the thresholds, or applies the no-data policy. */
export function judgeProbes(
  figures: ProbeFigures,
  thresholds: HealthThresholds,
  noData: NoDataPolicy,
  window: { durationMs: number; intervalMs: number },
): Finding[] {
  if (figures.count === 0) {
    const status = NO_DATA_STATUS[noData];
    return [
      {
        status,
        text: `no completed probes in the ${window.durationMs} ms window (interval ${window.intervalMs} ms); no-data policy "${noData}" makes it ${statusWord(status)}`,
      },
    ];
  }
  const failed = `${figures.errors} of ${figures.count} probes failed${figures.errors > 0 ? `: ${describeFailures(figures.failures)}` : ''}`;
  const rate = percent(figures.errorRate);
  const rateLimits = thresholds.errorRate;
  const errorFinding: Finding =
    figures.errorRate > rateLimits.unhealthy
      ? {
          status: HealthStatus.UNHEALTHY,
          text: `error rate ${rate} > unhealthy limit ${percent(rateLimits.unhealthy)} (${failed})`,
        }
      : figures.errorRate > rateLimits.degraded
        ? {
            status: HealthStatus.DEGRADED,
            text: `error rate ${rate} > degraded limit ${percent(rateLimits.degraded)} (${failed})`,
          }
        : { status: HealthStatus.HEALTHY, text: `error rate ${rate} (${failed})` };
  const p95 = `p95 ${figures.p95Ms} ms`;
  const latencyLimits = thresholds.p95Ms;
  const latencyFinding: Finding =
    figures.p95Ms > latencyLimits.unhealthy
      ? { status: HealthStatus.UNHEALTHY, text: `${p95} > unhealthy limit ${latencyLimits.unhealthy} ms` }
      : figures.p95Ms > latencyLimits.degraded
        ? { status: HealthStatus.DEGRADED, text: `${p95} > degraded limit ${latencyLimits.degraded} ms` }
        : { status: HealthStatus.HEALTHY, text: `${p95} (p50 ${figures.p50Ms} ms, max ${figures.maxMs} ms)` };
  return [errorFinding, latencyFinding];
}

/** A failed metrics or PromQL check: UNHEALTHY when the spec marks it required, else DEGRADED. */
export function checkFinding(passed: boolean, required: boolean, text: string): Finding {
  if (passed) return { status: HealthStatus.HEALTHY, text };
  return { status: required ? HealthStatus.UNHEALTHY : HealthStatus.DEGRADED, text };
}

function describeFailures(failures: Map<string, number>): string {
  return [...failures]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `${n}× ${kind}`)
    .join(', ');
}

function percent(ratio: number): string {
  return `${round2(ratio * 100)}%`;
}

/** Whether the monitor recommends rolling back. */
export function recommendsRollback(status: HealthStatus, rollbackOnInconclusive: boolean): boolean {
  return (
    status === HealthStatus.UNHEALTHY || (status === HealthStatus.INCONCLUSIVE && rollbackOnInconclusive)
  );
}
