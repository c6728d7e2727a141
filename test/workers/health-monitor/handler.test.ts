import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisPublisher } from '../../../src/bus/redis/publisher.js';
import type { HandlerContext } from '../../../src/bus/types.js';
import { UnrecoverableError } from '../../../src/errors/index.js';
import {
  type DeploymentEvent,
  decodeEntry,
  ExecutionStatus,
  type HealthCheckCompletedEvent,
  HealthCheckPurpose,
  HealthStatus,
} from '../../../src/events/index.js';
import { silentLogger } from '../../../src/runtime/logging.js';
import { createHealthMonitorHandler } from '../../../src/workers/health-monitor/index.js';
import { testHandlerContext } from '../../support/handler-context.js';
import { deletePrefix, testRedis, uniquePrefix } from '../../support/redis.js';
import { downBase, flakyService, healthyService, type LocalService } from './local-services.js';

let redis: Redis;
let prefix: string;
let publisher: RedisPublisher;
let healthy: LocalService;
let flaky: LocalService;
let down: string;

beforeAll(async () => {
  redis = testRedis();
  healthy = await healthyService();
  flaky = await flakyService(2);
  down = await downBase();
});
afterAll(async () => {
  await Promise.all([healthy.close(), flaky.close()]);
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix('health-monitor');
  publisher = new RedisPublisher({ client: redis, prefix, source: 'test/health-monitor' });
});
afterEach(async () => {
  await deletePrefix(redis, prefix);
});

/** Publishes a request the way the orchestrator would and reads it back as the router would. */
async function request(data: Record<string, unknown>): Promise<DeploymentEvent> {
  const published = await publisher.publish({
    type: 'health:check:started',
    data: { deploymentId: 'dep-7', ...data },
    correlationId: 'corr-health',
  });
  const [entry] = await redis.xrange(published.stream, '-', '+');
  return decodeEntry(entry![1]);
}

function handlerContext(event: DeploymentEvent) {
  const controller = new AbortController();
  const renewals: number[] = [];
  const context: HandlerContext = testHandlerContext({
    stream: `${prefix}:health:check:started`,
    group: 'printery-health-monitor',
    logger: silentLogger().child({ event_id: event.id }),
    publisher,
    signal: controller.signal,
    renewClaim: async () => {
      renewals.push(Date.now());
    },
  });
  return { context, controller, renewals };
}

async function results(): Promise<DeploymentEvent<HealthCheckCompletedEvent>[]> {
  const entries = await redis.xrange(`${prefix}:health:check:completed`, '-', '+');
  return entries.map(([, fields]) => decodeEntry(fields) as DeploymentEvent<HealthCheckCompletedEvent>);
}

const endpoints = (base: string) => ({ health: `${base}/health`, ready: `${base}/ready` });

describe('health monitor handler', () => {
  it('publishes health:check:completed with the verdict and per-service figures', async () => {
    const event = await request({
      services: ['api', 'worker'],
      purpose: HealthCheckPurpose.BAKE,
      deadlineSeconds: 60,
      spec: {
        intervalMs: 100,
        durationMs: 1000,
        requestTimeoutMs: 500,
        services: [
          { name: 'api', ...endpoints(healthy.base) },
          { name: 'worker', ...endpoints(flaky.base) },
        ],
      },
    });
    const { context } = handlerContext(event);
    await createHealthMonitorHandler()(event, context);

    const [result, ...rest] = await results();
    expect(rest).toHaveLength(0);
    expect(result!.correlationId).toBe('corr-health');
    expect(result!.causationId).toBe(event.id);
    expect(result!.deploymentId).toBe('dep-7');
    expect(result!.priority).toBe('HIGH');
    const data = result!.data;
    expect(data.deploymentId).toBe('dep-7');
    expect(data.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
    expect(data.purpose).toBe(HealthCheckPurpose.BAKE);
    expect(data.status).toBe(HealthStatus.UNHEALTHY);
    expect(data.rollbackRecommended).toBe(true);
    expect(data.reason).toMatch(
      /^unhealthy over a 1000 ms window: worker unhealthy \(error rate 50% > unhealthy limit 20%/,
    );
    expect(data.durationMs).toBeGreaterThanOrEqual(1000);
    expect(data.durationMs).toBeLessThan(2500);

    const [api, worker] = data.services;
    expect(api).toMatchObject({
      service: 'api',
      status: HealthStatus.HEALTHY,
      errorRate: 0,
      sampleCount: 20,
    });
    expect(api!.responseTimeP95Ms).toBeGreaterThan(0);
    expect(api!.responseTimeP95Ms).toBeLessThan(500);
    expect(api!.samples).toHaveLength(20);
    expect(api!.samples.every((s) => s.ok && (s.endpoint === 'health' || s.endpoint === 'ready'))).toBe(true);
    expect(worker).toMatchObject({
      service: 'worker',
      status: HealthStatus.UNHEALTHY,
      errorRate: 0.5,
      sampleCount: 20,
    });
    expect(worker!.samples.filter((s) => !s.ok)).toHaveLength(10);
    expect(worker!.message).toContain('10 of 20 probes failed');
  });

  it('recommends no rollback when every watched service is healthy, watching only those the event lists', async () => {
    const event = await request({
      services: ['api'],
      purpose: HealthCheckPurpose.POST_DEPLOY,
      spec: {
        intervalMs: 100,
        durationMs: 500,
        services: [
          { name: 'api', ...endpoints(healthy.base) },
          { name: 'legacy', ...endpoints(down) },
        ],
      },
    });
    await createHealthMonitorHandler()(event, handlerContext(event).context);
    const [result] = await results();
    expect(result!.data.status).toBe(HealthStatus.HEALTHY);
    expect(result!.data.rollbackRecommended).toBe(false);
    expect(result!.data.purpose).toBe(HealthCheckPurpose.POST_DEPLOY);
    expect(result!.data.services.map((s) => s.service)).toEqual(['api']);
    expect(result!.data.reason).toBe('service api healthy over a 500 ms window');
  });

  it('renews its claim repeatedly while a window longer than claimRenewIntervalMs runs', async () => {
    const event = await request({
      spec: { intervalMs: 200, durationMs: 1300, services: [{ name: 'api', ...endpoints(healthy.base) }] },
    });
    const { context, renewals } = handlerContext(event);
    const started = Date.now();
    await createHealthMonitorHandler({ claimRenewIntervalMs: 250 })(event, context);
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    expect(renewals.length).toBeLessThanOrEqual(6);
    for (let i = 1; i < renewals.length; i++) expect(renewals[i]! - renewals[i - 1]!).toBeLessThan(400);
    expect(renewals[0]! - started).toBeLessThan(400);
    const afterReturn = renewals.length;
    await new Promise((r) => setTimeout(r, 400));
    expect(renewals).toHaveLength(afterReturn);
    expect(await results()).toHaveLength(1);
  });

  it('keeps watching when a claim renewal fails', async () => {
    const event = await request({
      spec: {
        intervalMs: 100,
        durationMs: 500,
        services: [{ name: 'api', health: `${healthy.base}/health` }],
      },
    });
    const { context } = handlerContext(event);
    let attempts = 0;
    context.renewClaim = async () => {
      attempts++;
      throw new Error('NOGROUP');
    };
    await createHealthMonitorHandler({ claimRenewIntervalMs: 100 })(event, context);
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect((await results())[0]!.data.status).toBe(HealthStatus.HEALTHY);
  });

  it.each([
    ['no spec', {}, 'invalid health spec: spec: is missing'],
    [
      'a service without endpoints',
      { spec: { services: [{ name: 'api' }] } },
      'invalid health spec: services[0]: needs a health or a ready URL',
    ],
    [
      'a window longer than the deadline',
      { deadlineSeconds: 5, spec: { durationMs: '10s', services: [{ name: 'api', health: 'http://a/h' }] } },
      'invalid health spec: durationMs: the window (10000 ms)',
    ],
  ])(
    'answers a request with %s ERRORED, unhealthy, without recommending a rollback',
    async (_, data, reason) => {
      const event = await request({ purpose: HealthCheckPurpose.POST_DEPLOY, ...data });
      await createHealthMonitorHandler()(event, handlerContext(event).context);
      const [result] = await results();
      expect(result!.data).toMatchObject({
        deploymentId: 'dep-7',
        executionStatus: ExecutionStatus.ERRORED,
        status: HealthStatus.UNHEALTHY,
        rollbackRecommended: false,
        purpose: HealthCheckPurpose.POST_DEPLOY,
        services: [],
      });
      expect(result!.data.reason).toContain(reason);
    },
  );

  it('stops, throws and publishes nothing when its signal aborts mid-window', async () => {
    const event = await request({
      spec: { intervalMs: 100, durationMs: 5000, services: [{ name: 'api', ...endpoints(healthy.base) }] },
    });
    const { context, controller } = handlerContext(event);
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('consumer shutting down')), 300);
    await expect(createHealthMonitorHandler()(event, context)).rejects.toThrow('consumer shutting down');
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 200));
    expect(await results()).toHaveLength(0);
  });

  it('publishes the same event id when a redelivered request completes again', async () => {
    const event = await request({
      spec: {
        intervalMs: 100,
        durationMs: 200,
        services: [{ name: 'api', health: `${healthy.base}/health` }],
      },
    });
    const handler = createHealthMonitorHandler();
    await handler(event, handlerContext(event).context);
    await handler(event, handlerContext(event).context);
    const [first, second] = await results();
    expect(first!.id).toBe(second!.id);
    expect(first!.id).not.toBe(event.id);
    expect(first!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('refuses events of another type as unrecoverable', async () => {
    const published = await publisher.publish({
      type: 'deployment:started',
      data: { deploymentId: 'dep-7' },
    });
    const [entry] = await redis.xrange(published.stream, '-', '+');
    const event = decodeEntry(entry![1]);
    await expect(createHealthMonitorHandler()(event, handlerContext(event).context)).rejects.toThrow(
      UnrecoverableError,
    );
  });

  it('rejects a bad option when it is created', () => {
    expect(() => createHealthMonitorHandler({ claimRenewIntervalMs: 0 })).toThrow(
      'health monitor option claimRenewIntervalMs must be a positive integer, got 0',
    );
    expect(() => createHealthMonitorHandler({ maxSamplesPerService: 1.5 })).toThrow('maxSamplesPerService');
  });
});
