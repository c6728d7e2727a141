import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionStatus, HealthStatus } from '../../../src/events/index.js';
import {
  evaluateHealthWindow,
  type HealthOutcome,
  parseHealthSpec,
  type ServiceHealth,
} from '../../../src/workers/health-monitor/index.js';
import {
  basicAuthService,
  downBase,
  flakyService,
  healthyService,
  type LocalService,
  metricsService,
  slowService,
} from './local-services.js';

const started: LocalService[] = [];
async function track(service: Promise<LocalService>): Promise<LocalService> {
  const s = await service;
  started.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
});

function service(outcome: HealthOutcome, name: string): ServiceHealth {
  const found = outcome.services.find((s) => s.service === name);
  if (!found) throw new Error(`no result for ${name}: ${JSON.stringify(outcome)}`);
  return found;
}

const endpoints = (base: string) => ({ health: `${base}/health`, ready: `${base}/ready` });

describe('evaluateHealthWindow', () => {
  describe('with healthy, flaky, slow and down services in one 2 s window', () => {
    let outcome: HealthOutcome;
    let healthy: LocalService;
    let elapsedMs: number;

    beforeAll(async () => {
      healthy = await track(healthyService());
      const flaky = await track(flakyService(3));
      const hiccup = await track(flakyService(10));
      const slow = await track(slowService(2500));
      const down = await downBase();
      const t = Date.now();
      outcome = await evaluateHealthWindow({
        intervalMs: 200,
        durationMs: 2000,
        // Limits far from both the fast services and the slow one, so a loaded machine does not
        // move a service across them.
        requestTimeoutMs: 10_000,
        thresholds: { p95Ms: { degraded: 1500, unhealthy: 20_000 } },
        services: [
          { name: 'healthy', ...endpoints(healthy.base) },
          { name: 'flaky', ...endpoints(flaky.base) },
          { name: 'hiccup', ...endpoints(hiccup.base) },
          { name: 'slow', ...endpoints(slow.base) },
          { name: 'down', ...endpoints(down) },
        ],
      });
      elapsedMs = Date.now() - t;
    });

    it('probes health and ready once per interval for the whole window', () => {
      const result = service(outcome, 'healthy');
      expect(result.sampleCount).toBe(20);
      expect(healthy.requests.get('/health')).toBe(10);
      expect(healthy.requests.get('/ready')).toBe(10);
      expect(result.samples).toHaveLength(20);
      expect(result.samples.filter((s) => s.endpoint === 'ready')).toHaveLength(10);
      // Rounds run on a fixed schedule (one interval after the start, then every interval), so a
      // late round does not push the later ones back.
      const offsets = result.samples.filter((s) => s.endpoint === 'health').map((s) => s.offsetMs);
      offsets.forEach((offset, i) => {
        expect(offset).toBeGreaterThanOrEqual((i + 1) * 200 - 5);
      });
      // Not pushed back: each round starts no later than the next one is due after it (a round
      // delayed by a loaded machine does not shift every later round).
      offsets.slice(1).forEach((offset, i) => {
        expect(offset - offsets[i]!).toBeGreaterThan(0);
      });
      expect(offsets.at(-1)!).toBeLessThan(2000 + 1500);
      expect(elapsedMs).toBeGreaterThanOrEqual(2000);
    });

    it('finds the healthy service healthy with its response times', () => {
      const result = service(outcome, 'healthy');
      expect(result.status).toBe(HealthStatus.HEALTHY);
      expect(result.errorRate).toBe(0);
      expect(result.responseTimeP50Ms).toBeGreaterThan(0);
      expect(result.responseTimeP50Ms).toBeLessThanOrEqual(result.responseTimeP95Ms);
      expect(result.responseTimeP95Ms).toBeLessThanOrEqual(result.responseTimeMaxMs);
      expect(result.responseTimeP95Ms).toBeLessThan(1500);
      expect(result.samples.every((s) => s.ok)).toBe(true);
      expect(result.metricsFlowing).toBe(false);
    });

    it('marks a service failing a third of its probes unhealthy, counting 500s as errors', () => {
      const result = service(outcome, 'flaky');
      expect(result.status).toBe(HealthStatus.UNHEALTHY);
      expect(result.errorRate).toBeCloseTo(6 / 20, 5);
      expect(result.samples.filter((s) => !s.ok)).toHaveLength(6);
      expect(result.message).toMatch(
        /^error rate 30% > unhealthy limit 20% \(6 of 20 probes failed: .*HTTP 500/,
      );
    });

    it('marks a service failing a tenth of its probes degraded', () => {
      const result = service(outcome, 'hiccup');
      expect(result.status).toBe(HealthStatus.DEGRADED);
      expect(result.errorRate).toBeCloseTo(0.1, 5);
      expect(result.message).toContain('error rate 10% > degraded limit 5%');
    });

    it('marks a service whose p95 is over the degraded limit degraded', () => {
      const result = service(outcome, 'slow');
      expect(result.status).toBe(HealthStatus.DEGRADED);
      expect(result.errorRate).toBe(0);
      expect(result.responseTimeP95Ms).toBeGreaterThanOrEqual(2500);
      expect(result.responseTimeP95Ms).toBeLessThan(20_000);
      expect(result.message).toMatch(/^p95 \d+(\.\d+)? ms > degraded limit 1500 ms/);
    });

    it('marks a service that refuses connections unhealthy', () => {
      const result = service(outcome, 'down');
      expect(result.status).toBe(HealthStatus.UNHEALTHY);
      expect(result.errorRate).toBe(1);
      expect(result.sampleCount).toBe(20);
      expect(result.message).toContain('20 of 20 probes failed');
      expect(result.message).toContain('ECONNREFUSED');
    });

    it('gives the worst service status overall and recommends a rollback', () => {
      expect(outcome.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
      expect(outcome.status).toBe(HealthStatus.UNHEALTHY);
      expect(outcome.rollbackRecommended).toBe(true);
      expect(outcome.reason).toMatch(/^unhealthy over a 2000 ms window: (flaky|down) unhealthy/);
      for (const name of ['flaky', 'down', 'hiccup', 'slow']) expect(outcome.reason).toContain(name);
      expect(outcome.reason).not.toMatch(/(: |; )healthy /);
    });
  });

  it('counts a timeout as an error whose latency is the request timeout', async () => {
    const slow = await track(slowService(800));
    const outcome = await evaluateHealthWindow({
      intervalMs: 250,
      durationMs: 1000,
      requestTimeoutMs: 200,
      services: [{ name: 'api', health: `${slow.base}/health` }],
    });
    const result = service(outcome, 'api');
    expect(result.status).toBe(HealthStatus.UNHEALTHY);
    expect(result.errorRate).toBe(1);
    expect(result.message).toContain('4× health timeout after 200 ms');
    expect(result.responseTimeMaxMs).toBeGreaterThanOrEqual(195);
    expect(result.responseTimeMaxMs).toBeLessThan(500);
    expect(result.samples.every((s) => !s.ok && s.latencyMs >= 195)).toBe(true);
  });

  describe('metrics checks', () => {
    let outcome: HealthOutcome;
    let counting: LocalService;

    beforeAll(async () => {
      counting = await track(metricsService({ increasing: true }));
      const flat = await track(metricsService({ increasing: false }));
      outcome = await evaluateHealthWindow({
        intervalMs: 250,
        durationMs: 1500,
        requestTimeoutMs: 1000,
        services: [
          {
            name: 'counting',
            ...endpoints(counting.base),
            metrics: {
              url: `${counting.base}/metrics`,
              series: ['test_up'],
              increasing: ['test_requests_total', 'test_requests_total{path="/ready"}'],
            },
          },
          {
            name: 'flat',
            ...endpoints(flat.base),
            metrics: { url: `${flat.base}/metrics`, increasing: ['test_requests_total'] },
          },
          {
            name: 'flat-required',
            ...endpoints(flat.base),
            metrics: { url: `${flat.base}/metrics`, increasing: ['test_requests_total'], required: true },
          },
          {
            name: 'missing-series',
            ...endpoints(flat.base),
            metrics: { url: `${counting.base}/metrics`, series: ['test_up', 'http_requests_total'] },
          },
          {
            name: 'no-endpoint',
            ...endpoints(flat.base),
            metrics: `${counting.base}/nothing-here`,
          },
        ],
      });
    });

    it('passes when the series are present and the counters grew over the window', () => {
      const result = service(outcome, 'counting');
      expect(result.status).toBe(HealthStatus.HEALTHY);
      expect(result.metricsFlowing).toBe(true);
      expect(result.message).toMatch(
        /metrics flowing \(test_requests_total \+\d+, test_requests_total\{path="\/ready"\} \+6\)/,
      );
      expect(counting.requests.get('/metrics')).toBeGreaterThanOrEqual(4);
    });

    it('degrades a service whose counter stays flat', () => {
      const result = service(outcome, 'flat');
      expect(result.status).toBe(HealthStatus.DEGRADED);
      expect(result.metricsFlowing).toBe(false);
      expect(result.errorRate).toBe(0);
      expect(result.message).toMatch(/^metrics not flowing: test_requests_total stayed at 7/);
    });

    it('makes a flat counter unhealthy when the check is required', () => {
      const result = service(outcome, 'flat-required');
      expect(result.status).toBe(HealthStatus.UNHEALTHY);
      expect(result.message).toMatch(/^metrics not flowing/);
      expect(outcome.rollbackRecommended).toBe(true);
    });

    it('degrades a service missing a named series, naming it', () => {
      const result = service(outcome, 'missing-series');
      expect(result.status).toBe(HealthStatus.DEGRADED);
      expect(result.message).toMatch(/^metrics missing series http_requests_total;/);
    });

    it('degrades a service whose metrics URL answers without any sample', () => {
      const result = service(outcome, 'no-endpoint');
      expect(result.status).toBe(HealthStatus.DEGRADED);
      expect(result.metricsFlowing).toBe(false);
      expect(result.message).toContain(`metrics endpoint ${counting.base}/nothing-here exposes no samples`);
    });
  });

  describe('no-data policy (window shorter than one interval)', () => {
    let base: string;
    beforeAll(async () => {
      base = (await track(healthyService())).base;
    });
    const spec = (extra: object) => ({
      intervalMs: 500,
      durationMs: 300,
      services: [{ name: 'api', health: `${base}/health` }],
      ...extra,
    });

    it.each([
      ['fail (the default)', {}, HealthStatus.UNHEALTHY, true, 'unhealthy'],
      ['pass', { noData: 'pass' }, HealthStatus.HEALTHY, false, 'healthy'],
      ['inconclusive', { noData: 'inconclusive' }, HealthStatus.INCONCLUSIVE, false, 'inconclusive'],
      [
        'inconclusive with rollbackOnInconclusive',
        { noData: 'inconclusive', rollbackOnInconclusive: true },
        HealthStatus.INCONCLUSIVE,
        true,
        'inconclusive',
      ],
    ])('applies %s', async (_, extra, status, rollback, word) => {
      const outcome = await evaluateHealthWindow(spec(extra));
      const result = service(outcome, 'api');
      expect(result.sampleCount).toBe(0);
      expect(result.samples).toEqual([]);
      expect(result.status).toBe(status);
      expect(result.message).toContain('no completed probes in the 300 ms window (interval 500 ms)');
      expect(result.message).toContain(`makes it ${word}`);
      expect(outcome.status).toBe(status);
      expect(outcome.rollbackRecommended).toBe(rollback);
      expect(outcome.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
    });
  });

  describe('a malformed spec', () => {
    it.each([
      ['no spec at all', undefined, {}, 'invalid health spec: spec: is missing'],
      ['no services', { intervalMs: 100 }, {}, 'services: is required'],
      ['an empty service list', { services: [] }, {}, 'services: must list at least one service'],
      [
        'an unknown setting',
        { services: [{ name: 'a', health: 'http://x/h' }], intervl: 5 },
        {},
        'unknown setting "intervl"',
      ],
      [
        'a service without endpoints',
        { services: [{ name: 'a' }] },
        {},
        'services[0]: needs a health or a ready URL',
      ],
      [
        'a bad duration',
        { durationMs: '30 seconds', services: [{ name: 'a', health: 'http://x/h' }] },
        {},
        'durationMs: expected milliseconds or a duration like',
      ],
      [
        'a bad condition operator',
        {
          services: [
            {
              name: 'a',
              health: 'http://x/h',
              promql: { url: 'http://p', query: 'up', condition: { op: '=>', value: 1 } },
            },
          ],
        },
        {},
        'services[0].promql.condition.op:',
      ],
      [
        'a bad series selector',
        {
          services: [{ name: 'a', health: 'http://x/h', metrics: { url: 'http://x/m', series: ['9lives'] } }],
        },
        {},
        'services[0].metrics.series[0]: expected a series name',
      ],
      [
        'thresholds in the wrong order',
        {
          thresholds: { errorRate: { degraded: 0.5, unhealthy: 0.1 } },
          services: [{ name: 'a', health: 'http://x/h' }],
        },
        {},
        'thresholds.errorRate: degraded limit 0.5 is above the unhealthy limit 0.1',
      ],
      [
        'a duplicate service',
        {
          services: [
            { name: 'a', health: 'http://x/h' },
            { name: 'a', ready: 'http://x/r' },
          ],
        },
        {},
        'services[1].name: duplicate "a"',
      ],
      [
        'a URL that is not http',
        { services: [{ name: 'a', health: 'ftp://x/h' }] },
        {},
        'services[0].health: is not an http(s) URL',
      ],
      [
        'a reference that is not set',
        { services: [{ name: 'a', health: 'http://x/h', ready: '${HM_TEST_UNSET_URL}' }] },
        {},
        'cannot resolve health spec: services[0]: ready: ${HM_TEST_UNSET_URL} is not set',
      ],
      [
        'a window longer than the deadline',
        { durationMs: '30s', services: [{ name: 'a', health: 'http://x/h' }] },
        { deadlineMs: 20_000 },
        'durationMs: the window (30000 ms) plus one request timeout (2000 ms) does not fit in the deadline of 20000 ms',
      ],
      [
        'an event naming a service the spec lacks',
        { services: [{ name: 'a', health: 'http://x/h' }] },
        { services: ['a', 'b'] },
        'services: "b" listed in the event but not in spec.services',
      ],
    ])('with %s is answered ERRORED, naming the field', async (_, spec, options, reason) => {
      const outcome = await evaluateHealthWindow(spec, { ...options, lookup: () => undefined });
      expect(outcome.executionStatus).toBe(ExecutionStatus.ERRORED);
      expect(outcome.status).toBe(HealthStatus.UNHEALTHY);
      expect(outcome.rollbackRecommended).toBe(false);
      expect(outcome.services).toEqual([]);
      expect(outcome.reason).toContain(reason);
      expect(outcome.durationMs).toBeLessThan(100);
    });
  });

  it('fills in the documented defaults', () => {
    const spec = parseHealthSpec({ services: [{ name: 'api', ready: 'http://api/ready' }] });
    expect(spec).toMatchObject({
      intervalMs: 1000,
      durationMs: 30_000,
      requestTimeoutMs: 2000,
      thresholds: {
        errorRate: { degraded: 0.05, unhealthy: 0.2 },
        p95Ms: { degraded: 500, unhealthy: 2000 },
      },
      noData: 'fail',
      rollbackOnInconclusive: false,
    });
    expect(parseHealthSpec({ intervalMs: '1.5s', durationMs: '2m', services: spec.services })).toMatchObject({
      intervalMs: 1500,
      durationMs: 120_000,
    });
  });

  describe('secrets in URLs', () => {
    it('resolves ${NAME} credentials at use and sends them as basic auth', async () => {
      const guarded = await track(basicAuthService('monitor', 'p@ss:word'));
      const env: Record<string, string> = { HM_USER: 'monitor', HM_PASS: encodeURIComponent('p@ss:word') };
      const outcome = await evaluateHealthWindow(
        {
          intervalMs: 100,
          durationMs: 300,
          services: [
            { name: 'api', health: `http://\${HM_USER}:\${HM_PASS}@127.0.0.1:${guarded.port}/health` },
          ],
        },
        { lookup: (name) => env[name] },
      );
      expect(service(outcome, 'api').status).toBe(HealthStatus.HEALTHY);
      expect(guarded.requests.get('/health')).toBe(3);
    });

    it('never shows a credential in messages', async () => {
      const down = await downBase();
      const secret = 'hunter2-very-secret';
      const outcome = await evaluateHealthWindow(
        {
          intervalMs: 100,
          durationMs: 200,
          requestTimeoutMs: 300,
          services: [
            {
              name: 'api',
              health: `${down.replace('//', '//user:${HM_SECRET}@')}/health`,
              metrics: { url: `${down}/metrics?token=\${HM_SECRET}`, increasing: ['x_total'] },
              promql: {
                url: `${down.replace('//', '//u:${HM_SECRET}@')}`,
                query: 'up',
                condition: { op: '>', value: 0 },
              },
            },
          ],
        },
        { lookup: (name) => (name === 'HM_SECRET' ? secret : undefined) },
      );
      const text = JSON.stringify(outcome);
      expect(text).not.toContain(secret);
      const result = service(outcome, 'api');
      expect(result.message).toContain('/metrics?***');
      expect(result.message).toContain('Prometheus http://***:***@127.0.0.1');
      expect(result.status).toBe(HealthStatus.UNHEALTHY);
    });
  });

  it('keeps at most maxSamplesPerService samples, spread evenly over the window', async () => {
    const healthy = await track(healthyService());
    const outcome = await evaluateHealthWindow(
      { intervalMs: 100, durationMs: 1000, services: [{ name: 'api', ...endpoints(healthy.base) }] },
      { maxSamplesPerService: 5 },
    );
    const result = service(outcome, 'api');
    expect(result.sampleCount).toBe(20);
    expect(result.samples).toHaveLength(5);
    const offsets = result.samples.map((s) => s.offsetMs);
    expect(offsets[0]).toBeLessThan(150);
    expect(offsets.at(-1)).toBeGreaterThan(950);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
  });

  it("caps the window at the worker's maximum and says so", async () => {
    const healthy = await track(healthyService());
    const t = Date.now();
    const outcome = await evaluateHealthWindow(
      { intervalMs: 100, durationMs: '1h', services: [{ name: 'api', health: `${healthy.base}/health` }] },
      { maxDurationMs: 400 },
    );
    expect(Date.now() - t).toBeLessThan(1500);
    expect(outcome.window).toEqual({ intervalMs: 100, durationMs: 400, requestTimeoutMs: 2000 });
    expect(service(outcome, 'api').sampleCount).toBe(4);
    expect(outcome.reason).toContain("durationMs 3600000 capped to the worker's maximum 400");
  });

  it('stops at once and rejects when its signal aborts', async () => {
    const healthy = await track(healthyService());
    const controller = new AbortController();
    const t = Date.now();
    setTimeout(() => controller.abort(new Error('shutting down')), 300);
    await expect(
      evaluateHealthWindow(
        { intervalMs: 100, durationMs: 5000, services: [{ name: 'api', health: `${healthy.base}/health` }] },
        { signal: controller.signal },
      ),
    ).rejects.toThrow('shutting down');
    expect(Date.now() - t).toBeLessThan(800);
    // A request already on the wire may still land; after that, no new rounds start.
    await new Promise((r) => setTimeout(r, 100));
    const probesAfterAbort = healthy.requests.get('/health') ?? 0;
    expect(probesAfterAbort).toBeLessThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 400));
    expect(healthy.requests.get('/health') ?? 0).toBe(probesAfterAbort);
  });
});
