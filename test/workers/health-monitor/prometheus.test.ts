import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionStatus, HealthStatus } from '../../../src/events/index.js';
import {
  evaluateHealthWindow,
  type HealthOutcome,
  type ServiceHealth,
} from '../../../src/workers/health-monitor/index.js';
import { eventually } from '../../support/redis.js';
import { downBase, freePort, type LocalService, metricsService } from './local-services.js';

/** A real Prometheus (Debian's binary) scraping two local services every second. */
let prometheus: ChildProcess;
let prometheusUrl: string;
let stderr = '';
let dir: string;
let counting: LocalService;
let flat: LocalService;

async function instantQuery(
  query: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await response.json()) as {
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  return body.data.result;
}

beforeAll(async () => {
  counting = await metricsService({ increasing: true });
  flat = await metricsService({ increasing: false });
  dir = await mkdtemp(join(tmpdir(), 'materi-health-prometheus-'));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      `  - { job_name: counting, static_configs: [{ targets: ['127.0.0.1:${counting.port}'] }] }`,
      `  - { job_name: flat, static_configs: [{ targets: ['127.0.0.1:${flat.port}'] }] }`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    '/usr/bin/prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  // The first sample lands ~5 s after start even at a 1 s scrape interval, and rate() needs two:
  // poll until both jobs have two, rather than sleeping a guessed time.
  await eventually(
    async () => {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      const result = await instantQuery('count_over_time(test_up[1m]) >= 2');
      return result.length === 2;
    },
    15_000,
    200,
  );
}, 20_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = once(prometheus, 'exit');
    prometheus.kill('SIGTERM');
    await exited;
  }
  await Promise.all([counting?.close(), flat?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function service(outcome: HealthOutcome, name: string): ServiceHealth {
  const found = outcome.services.find((s) => s.service === name);
  if (!found) throw new Error(`no result for ${name}: ${outcome.reason}`);
  return found;
}

const probes = (s: LocalService) => ({ health: `${s.base}/health`, ready: `${s.base}/ready` });

describe('PromQL checks against a real Prometheus', () => {
  let outcome: HealthOutcome;

  beforeAll(async () => {
    const nowhere = await downBase();
    const [total] = await instantQuery('sum(test_requests_total{job="counting"})');
    const current = Number(total!.value[1]);
    const promql = (query: string, op: string, value: number, required = false) => ({
      url: prometheusUrl,
      query,
      condition: { op, value },
      required,
    });
    outcome = await evaluateHealthWindow({
      intervalMs: 250,
      durationMs: 2500,
      requestTimeoutMs: 1000,
      services: [
        {
          name: 'flowing',
          ...probes(counting),
          promql: promql('sum(rate(test_requests_total{job="counting"}[1m]))', '>', 0),
        },
        {
          name: 'growing',
          ...probes(counting),
          promql: promql('sum(test_requests_total{job="counting"})', '>', current + 3),
        },
        { name: 'scalar', ...probes(counting), promql: promql('scalar(sum(test_up))', '>=', 2) },
        {
          name: 'flat',
          ...probes(flat),
          promql: promql('sum(rate(test_requests_total{job="flat"}[1m]))', '>', 0),
        },
        {
          name: 'flat-required',
          ...probes(flat),
          promql: promql('sum(rate(test_requests_total{job="flat"}[1m]))', '>', 0, true),
        },
        { name: 'absent', ...probes(flat), promql: promql('test_requests_total{job="nope"}', '>', 0) },
        { name: 'per-series', ...probes(flat), promql: promql('test_up', '==', 1) },
        {
          name: 'no-prometheus',
          ...probes(flat),
          promql: { url: nowhere, query: 'up', condition: { op: '>', value: 0 } },
        },
      ],
    });
  }, 15_000);

  it('passes a service whose condition holds at the first poll', () => {
    const result = service(outcome, 'flowing');
    expect(result.status).toBe(HealthStatus.HEALTHY);
    expect(result.metricsFlowing).toBe(true);
    expect(result.message).toMatch(/promql held after \d+ ms \([\d.e+-]+ > 0\)/);
  });

  it('keeps polling until the condition holds once new samples arrive', () => {
    const result = service(outcome, 'growing');
    expect(result.status).toBe(HealthStatus.HEALTHY);
    const heldAfter = Number(/promql held after (\d+) ms/.exec(result.message)?.[1]);
    expect(heldAfter).toBeGreaterThanOrEqual(250);
    expect(heldAfter).toBeLessThanOrEqual(2500);
  });

  it('applies the condition to a scalar result', () => {
    const result = service(outcome, 'scalar');
    expect(result.status).toBe(HealthStatus.HEALTHY);
    expect(result.message).toContain('(2 >= 2)');
  });

  it('applies the condition to every sample of a vector', () => {
    expect(service(outcome, 'per-series').status).toBe(HealthStatus.HEALTHY);
    expect(service(outcome, 'per-series').message).toContain('(of 2 series)');
  });

  it('degrades a service whose condition never holds, with the last value', () => {
    const result = service(outcome, 'flat');
    expect(result.status).toBe(HealthStatus.DEGRADED);
    expect(result.metricsFlowing).toBe(false);
    expect(result.message).toMatch(
      /^promql never held in \d+ polls: sum\(rate\(test_requests_total\{job="flat"\}\[1m\]\)\) > 0, last value 0/,
    );
  });

  it('makes a required condition that never holds unhealthy', () => {
    expect(service(outcome, 'flat-required').status).toBe(HealthStatus.UNHEALTHY);
    expect(outcome.status).toBe(HealthStatus.UNHEALTHY);
    expect(outcome.rollbackRecommended).toBe(true);
  });

  it('does not count an empty result as holding', () => {
    const result = service(outcome, 'absent');
    expect(result.status).toBe(HealthStatus.DEGRADED);
    expect(result.message).toContain('last value none (empty vector)');
  });

  it('reports an unreachable Prometheus as the reason', () => {
    const result = service(outcome, 'no-prometheus');
    expect(result.status).toBe(HealthStatus.DEGRADED);
    expect(result.message).toMatch(/Prometheus http:\/\/127\.0\.0\.1:\d+\/ unreachable: ECONNREFUSED/);
  });

  it.each([
    ['a query Prometheus cannot parse', 'sum(rate(', 'Prometheus rejected the query (bad_data:'],
    ['a range-vector query', 'test_up[1m]', 'the query returns a matrix result'],
  ])('answers %s ERRORED at once, naming the field', async (_, query, reason) => {
    const t = Date.now();
    const errored = await evaluateHealthWindow({
      intervalMs: 250,
      durationMs: 5000,
      services: [
        { name: 'api', ...probes(counting) },
        {
          name: 'web',
          ...probes(counting),
          promql: { url: prometheusUrl, query, condition: { op: '>', value: 0 } },
        },
      ],
    });
    expect(Date.now() - t).toBeLessThan(1500);
    expect(errored.executionStatus).toBe(ExecutionStatus.ERRORED);
    expect(errored.status).toBe(HealthStatus.UNHEALTHY);
    expect(errored.rollbackRecommended).toBe(false);
    expect(errored.reason).toContain(`invalid health spec: services[1].promql.query: ${reason}`);
  });
});
