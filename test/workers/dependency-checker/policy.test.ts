import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DependencyCheckResult, ExecutionStatus } from '../../../src/events/index.js';
import {
  DEFAULT_DEPENDENCY_PROBES,
  defineDependencyProbe,
  dependencySettings,
  runDependencyChecks,
} from '../../../src/workers/dependency-checker/index.js';

let server: Server;
let base: string;
let closedPort: number;
const flaky = new Map<string, number>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/up') {
      res.writeHead(200).end('ok');
    } else if (url.pathname === '/slow') {
      setTimeout(() => res.writeHead(200).end('ok'), 2000).unref();
    } else if (url.pathname === '/flaky') {
      // Fails the first `fail` requests of each `key`, then answers 200.
      const key = url.searchParams.get('key')!;
      const seen = (flaky.get(key) ?? 0) + 1;
      flaky.set(key, seen);
      res.writeHead(seen <= Number(url.searchParams.get('fail')) ? 503 : 200).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const up = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  type: 'http',
  url: `${base}/up`,
  ...extra,
});
const down = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  type: 'tcp',
  host: '127.0.0.1',
  port: closedPort,
  ...extra,
});

describe('dependency verdict policy', () => {
  it('is ALL_HEALTHY when every dependency answers', async () => {
    const outcome = await runDependencyChecks({
      retries: 0,
      dependencies: [up('a'), up('b', { critical: false })],
    });
    expect(outcome).toMatchObject({
      result: DependencyCheckResult.ALL_HEALTHY,
      executionStatus: ExecutionStatus.SUCCEEDED,
      message: 'all 2 dependencies healthy',
    });
  });

  it('is SOME_DEGRADED when only non-critical dependencies are unhealthy', async () => {
    const outcome = await runDependencyChecks({
      retries: 0,
      dependencies: [up('api'), down('cache', { critical: false, service: 'api' })],
    });
    expect(outcome.result).toBe(DependencyCheckResult.SOME_DEGRADED);
    expect(outcome.dependencies[1]).toMatchObject({
      name: 'cache',
      service: 'api',
      healthy: false,
      critical: false,
    });
    expect(outcome.message).toBe(
      `1 of 2 dependencies unhealthy: cache: 127.0.0.1:${closedPort} refused the connection (ECONNREFUSED)`,
    );
  });

  it('is ALL_UNHEALTHY when a critical dependency is unhealthy, even if others are fine', async () => {
    const outcome = await runDependencyChecks({
      retries: 0,
      dependencies: [up('api'), down('db', { critical: true })],
    });
    expect(outcome.result).toBe(DependencyCheckResult.ALL_UNHEALTHY);
    expect(outcome.message).toMatch(/^1 of 2 dependencies unhealthy: db \(critical\): /);
  });

  it('treats dependencies as critical unless they say otherwise', async () => {
    const outcome = await runDependencyChecks({ retries: 0, dependencies: [up('api'), down('db')] });
    expect(outcome.dependencies[1]!.critical).toBe(true);
    expect(outcome.result).toBe(DependencyCheckResult.ALL_UNHEALTHY);
  });

  it('is ALL_UNHEALTHY when every dependency is unhealthy, critical or not', async () => {
    const outcome = await runDependencyChecks({
      retries: 0,
      dependencies: [down('a', { critical: false }), down('b', { critical: false })],
    });
    expect(outcome.result).toBe(DependencyCheckResult.ALL_UNHEALTHY);
  });

  it('is ALL_HEALTHY with a note when there is nothing to check', async () => {
    const outcome = await runDependencyChecks({ dependencies: [] });
    expect(outcome).toMatchObject({
      result: DependencyCheckResult.ALL_HEALTHY,
      message: 'no dependencies to check',
    });
  });
});

describe('retries and time limits', () => {
  it('retries an unhealthy dependency and reports the attempts it took', async () => {
    const outcome = await runDependencyChecks({
      retries: 3,
      retryDelayMs: 20,
      dependencies: [{ name: 'flaky', type: 'http', url: `${base}/flaky?key=a&fail=2` }],
    });
    expect(outcome.dependencies[0]).toMatchObject({ healthy: true, attempts: 3, message: 'HTTP 200' });
    expect(outcome.result).toBe(DependencyCheckResult.ALL_HEALTHY);
  });

  it('stops after the bounded retries and says how many attempts failed', async () => {
    const started = Date.now();
    const outcome = await runDependencyChecks({
      retries: 2,
      retryDelayMs: 100,
      dependencies: [{ name: 'flaky', type: 'http', url: `${base}/flaky?key=b&fail=10` }],
    });
    expect(outcome.dependencies[0]).toMatchObject({
      healthy: false,
      attempts: 3,
      message: `HTTP 503 from ${base}/flaky?***, expected 2xx (after 3 attempts)`,
    });
    expect(flaky.get('b')).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('lets a dependency override the shared retries and time limit', async () => {
    const outcome = await runDependencyChecks({
      retries: 5,
      retryDelayMs: 10,
      timeoutMs: 5000,
      dependencies: [{ name: 'slow', type: 'http', url: `${base}/slow`, retries: 0, timeoutMs: 100 }],
    });
    expect(outcome.dependencies[0]).toMatchObject({
      healthy: false,
      attempts: 1,
      message: 'no answer within 100 ms',
    });
    expect(outcome.dependencies[0]!.latencyMs).toBeGreaterThanOrEqual(95);
  });

  it('checks dependencies in parallel', async () => {
    const started = Date.now();
    const outcome = await runDependencyChecks({
      timeoutMs: 300,
      retries: 0,
      dependencies: ['a', 'b', 'c', 'd'].map((name) => ({
        name,
        type: 'http',
        url: `${base}/slow`,
        critical: false,
      })),
    });
    expect(outcome.dependencies.every((d) => !d.healthy)).toBe(true);
    expect(Date.now() - started).toBeLessThan(900);
  });

  it('cuts attempts at the gate deadline and reports TIMED_OUT', async () => {
    const outcome = await runDependencyChecks(
      { timeoutMs: 5000, retries: 0, dependencies: [{ name: 'slow', type: 'http', url: `${base}/slow` }] },
      { deadline: new Date(Date.now() + 150) },
    );
    expect(outcome.executionStatus).toBe(ExecutionStatus.TIMED_OUT);
    expect(outcome.result).toBe(DependencyCheckResult.ALL_UNHEALTHY);
    expect(outcome.dependencies[0]!.message).toMatch(/^no answer before the gate deadline \(\d+ ms\)$/);
  });

  it('rejects with the reason when the worker aborts the run', async () => {
    const controller = new AbortController();
    const run = runDependencyChecks(
      { timeoutMs: 5000, dependencies: [{ name: 'slow', type: 'http', url: `${base}/slow` }] },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    await expect(run).rejects.toThrow('shutting down');
  });
});

describe('spec handling', () => {
  it('gives ERRORED + ALL_UNHEALTHY for a spec that is not an object', async () => {
    const outcome = await runDependencyChecks(['postgres']);
    expect(outcome).toMatchObject({
      result: DependencyCheckResult.ALL_UNHEALTHY,
      executionStatus: ExecutionStatus.ERRORED,
      dependencies: [],
    });
    expect(outcome.message).toMatch(/^invalid dependency spec: /);
  });

  it('names an unknown dependency type and lists the known ones', async () => {
    const outcome = await runDependencyChecks({
      dependencies: [up('a'), { name: 'q', type: 'amqp', url: 'amqp://x' }],
    });
    expect(outcome.message).toBe(
      'invalid dependency spec: dependencies[1].type: must be one of http, tcp, postgres, redis, mysql',
    );
  });

  it('names an unknown setting of a dependency', async () => {
    const outcome = await runDependencyChecks({ dependencies: [up('a', { expectedStatus: [200] })] });
    expect(outcome.message).toBe('invalid dependency spec: dependencies[0].expectedStatus: unknown setting');
  });

  it('names a missing required setting', async () => {
    const outcome = await runDependencyChecks({ dependencies: [{ name: 't', type: 'tcp', host: 'x' }] });
    expect(outcome.message).toBe('invalid dependency spec: dependencies[0].port: is required');
  });

  it('names a literal URL with the wrong scheme and an invalid body pattern', async () => {
    const scheme = await runDependencyChecks({
      dependencies: [{ name: 'p', type: 'postgres', url: 'mysql://x/y' }],
    });
    expect(scheme.message).toBe(
      'invalid dependency spec: dependencies[0].url: must start with postgres:// or postgresql://',
    );
    const pattern = await runDependencyChecks({ dependencies: [up('a', { bodyMatches: '(' })] });
    expect(pattern.message).toBe(
      'invalid dependency spec: dependencies[0].bodyMatches: must be a valid regular expression',
    );
  });

  it('marks a dependency unhealthy naming a variable that is not set, without retrying', async () => {
    const outcome = await runDependencyChecks(
      {
        retries: 3,
        retryDelayMs: 1,
        dependencies: [{ name: 'db', type: 'postgres', url: '${DATABASE_URL}' }],
      },
      { env: {} },
    );
    expect(outcome.dependencies[0]).toMatchObject({
      healthy: false,
      attempts: 1,
      message: '${DATABASE_URL} is not set',
    });
  });

  it('does not retry a resolved URL with the wrong scheme', async () => {
    const outcome = await runDependencyChecks(
      {
        retries: 3,
        retryDelayMs: 1,
        dependencies: [{ name: 'db', type: 'postgres', url: '${DATABASE_URL}' }],
      },
      { env: { DATABASE_URL: 'mysql://root@127.0.0.1/x' } },
    );
    expect(outcome.dependencies[0]).toMatchObject({
      healthy: false,
      attempts: 1,
      message: 'url must start with postgres:// or postgresql://',
    });
  });
});

describe('extension point', () => {
  it('runs a dependency type added through probes', async () => {
    const calls: string[] = [];
    const fileProbe = defineDependencyProbe({
      type: 'queue',
      item: z.strictObject({ type: z.literal('queue'), queue: z.string(), ...dependencySettings }),
      async probe(item) {
        calls.push(item.queue);
        await delay(1);
        return { healthy: item.queue !== 'stuck', message: `queue ${item.queue} checked` };
      },
    });
    const outcome = await runDependencyChecks(
      {
        retries: 0,
        dependencies: [
          { name: 'jobs', type: 'queue', queue: 'jobs' },
          { name: 'mail', type: 'queue', queue: 'stuck', critical: false },
        ],
      },
      { probes: [...DEFAULT_DEPENDENCY_PROBES, fileProbe] },
    );
    expect(calls).toEqual(['jobs', 'stuck']);
    expect(outcome.result).toBe(DependencyCheckResult.SOME_DEGRADED);
    expect(outcome.dependencies.map((d) => [d.type, d.message])).toEqual([
      ['queue', 'queue jobs checked'],
      ['queue', 'queue stuck checked'],
    ]);
  });
});
