import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startHeartbeat } from '../../src/bus/heartbeat.js';
import { type EventBus, openEventBus } from '../../src/bus/open.js';
import { Router } from '../../src/bus/router.js';
import { UnrecoverableError } from '../../src/errors/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { createBusMetrics, serveMetrics } from '../../src/runtime/metrics.js';
import { runCli } from '../support/cli.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (
  text: string,
) => { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }[];

const logger = silentLogger();
let prefix: string;
let bus: EventBus;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  prefix = uniquePrefix('metrics');
  bus = await openEventBus(loadSettings({ MATERI_REDIS_URL: TEST_REDIS_URL, MATERI_STREAM_PREFIX: prefix }), {
    logger,
    source: 'test',
    subscriber: { blockMs: 100, scanIntervalMs: 50 },
    heartbeatIntervalMs: 200,
  });
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  await bus.close();
  const redis = testRedis();
  await deletePrefix(redis, prefix);
  await redis.quit();
});

function value(
  families: ReturnType<typeof parsePrometheusTextFormat>,
  name: string,
  labels: Record<string, string>,
): number {
  const family = families.find((f) => f.name === name);
  const metric = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return metric ? Number(metric.value) : Number.NaN;
}

describe('metrics', () => {
  it('serves /metrics in the Prometheus text format, with counters that move as events flow', async () => {
    const metrics = createBusMetrics();
    metrics.watchGroups(bus.inspector);
    const router = new Router({
      subscriber: bus.subscriber,
      publisher: bus.publisher,
      observer: metrics.observer,
    });
    let calls = 0;
    router.addHandler({
      name: 'measured',
      group: 'measured',
      types: ['deployment:started', 'deployment:failed'],
      maxDeliveries: 2,
      backoff: { baseMs: 50, jitter: 0 },
      handler: async (e) => {
        if (e.type === 'deployment:failed') {
          calls++;
          throw calls > 10 ? new UnrecoverableError('x') : new Error('flaky');
        }
      },
    });
    await router.start();
    cleanups.push(() => router.close(200));
    const server = await serveMetrics(metrics.registry, { port: 0 });
    cleanups.push(() => server.close());
    const scrape = async () =>
      parsePrometheusTextFormat(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());

    const before = await scrape();
    expect(Number.isNaN(value(before, 'materi_events_handled_total', { group: 'measured' }))).toBe(true);
    await bus.publisher.publishBatch([
      ...Array.from({ length: 5 }, () => ({ type: 'deployment:started', data: { deploymentId: 'd' } })),
      { type: 'deployment:failed', data: { deploymentId: 'd' } },
    ]);
    await eventually(
      async () => value(await scrape(), 'materi_events_dead_lettered_total', { group: 'measured' }) === 1,
    );
    await new Promise((r) => setTimeout(r, 100));
    const after = await scrape();
    expect(
      value(after, 'materi_events_handled_total', { group: 'measured', type: 'deployment:started' }),
    ).toBe(5);
    expect(
      value(after, 'materi_events_retried_total', { group: 'measured', type: 'deployment:failed' }),
    ).toBe(1);
    expect(value(after, 'materi_events_failed_total', { group: 'measured', type: 'deployment:failed' })).toBe(
      2,
    );
    expect(
      value(after, 'materi_events_dead_lettered_total', { group: 'measured', reason: 'max-deliveries' }),
    ).toBe(1);
    expect(after.find((f) => f.name === 'materi_handler_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(value(after, 'materi_group_pending', { group: 'measured' })).toBe(0);
    expect(value(after, 'materi_group_lag', { group: 'measured' })).toBe(0);
    expect(value(after, 'materi_dlq_depth', { group: 'measured' })).toBe(1);
    expect(after.some((f) => f.name === 'materi_process_resident_memory_bytes')).toBe(true);
  });
});

describe('materi workers', () => {
  it('shows groups with live consumers, and marks the consumers of a process that stopped beating as dead', async () => {
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
    router.addHandler({
      name: 'watched',
      group: 'watched',
      types: ['validation:started'],
      handler: async () => {},
    });
    await router.start();
    cleanups.push(() => router.close(200));
    const stop = startHeartbeat(bus.inspector, { role: 'test', groups: () => ['watched'], intervalMs: 200 });
    await bus.publisher.publish({ type: 'validation:started', data: { deploymentId: 'd' } });
    const env = {
      MATERI_REDIS_URL: TEST_REDIS_URL,
      MATERI_STREAM_PREFIX: prefix,
      MATERI_DATA_DIR: `/tmp/${prefix.replace(/:/g, '-')}`,
    };
    const alive = await eventually(async () => {
      const report = JSON.parse((await runCli(['workers', '--json'], env)).stdout);
      const group = report.groups.find((g: { group: string }) => g.group === 'watched');
      return group?.consumers.length ? group : undefined;
    });
    expect(alive).toMatchObject({ lag: 0, pending: 0, deadLetterDepth: 0 });
    expect(alive.consumers[0]).toMatchObject({ state: 'alive', host: hostname(), pid: process.pid });

    await stop();
    // Another process of the group died without a goodbye: its heartbeat stops, its consumer stays.
    await bus.inspector.beat({
      host: 'gone-host',
      pid: 4242,
      role: 'worker',
      groups: ['watched'],
      startedAt: new Date(),
      beatAt: new Date(Date.now() - 60_000),
    });
    const redis = testRedis();
    cleanups.push(() => redis.quit());
    await redis.xgroup(
      'CREATECONSUMER',
      `${prefix}:validation:started`,
      'watched',
      'watched:gone-host:4242:0',
    );
    const text = (await runCli(['workers'], env)).stdout;
    expect(text).toMatch(/^watched {2}lag 0 {2}pending 0/m);
    expect(text).toMatch(/DEAD +watched:gone-host:4242:0 {2}gone-host pid 4242/);
    expect(text).toMatch(/DEAD +watched:[^:]+:\d+:0 .*pid \d+/);
  });
});
