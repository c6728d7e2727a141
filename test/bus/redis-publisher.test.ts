import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runInEventContext } from '../../src/bus/context.js';
import { DeploymentEventPublisher } from '../../src/bus/event-publisher.js';
import { createRedisClient } from '../../src/bus/redis/connection.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { EventValidationError, PublishError, UnknownEventTypeError } from '../../src/errors/index.js';
import {
  CheckStatus,
  DependencyCheckResult,
  DeploymentStatus,
  decodeEntry,
  ENTRY_FIELDS,
  ExecutionStatus,
  HealthStatus,
  NotificationOutcome,
  ValidationResult,
} from '../../src/events/index.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
let prefix: string;
let publisher: RedisPublisher;
let events: DeploymentEventPublisher;

beforeAll(() => {
  redis = testRedis();
});
afterAll(async () => {
  await redis.quit();
});

function setUp() {
  prefix = uniquePrefix('publisher');
  publisher = new RedisPublisher({ client: redis, prefix, source: 'test/publisher' });
  events = new DeploymentEventPublisher(publisher);
}
afterEach(async () => {
  await deletePrefix(redis, prefix);
});

/** Reads an entry the way a third party would: XRANGE and JSON.parse, no Materi code. */
async function readRaw(key: string): Promise<Record<string, string>[]> {
  const entries = await redis.xrange(key, '-', '+');
  return entries.map(([, fields]) => {
    const record: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    return record;
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const deploymentId = 'dep-42';

const cases: [string, string, () => Promise<unknown>, string, Record<string, unknown>][] = [
  [
    'publishDeploymentStarted',
    'deployment:started',
    () =>
      events.publishDeploymentStarted(
        {
          deploymentId,
          version: 'v1.4.2',
          environment: 'production',
          strategy: 'rolling',
          services: ['api', 'web'],
        },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    {
      deploymentId,
      version: 'v1.4.2',
      environment: 'production',
      strategy: 'rolling',
      services: ['api', 'web'],
    },
  ],
  [
    'publishStageStarted',
    'deployment:stage:vercel:started',
    () =>
      events.publishStageStarted(
        { deploymentId, stage: 'vercel', description: 'web front end', services: ['web'] },
        { correlationId: 'corr-1' },
      ),
    'HIGH',
    { stage: 'vercel', description: 'web front end', services: ['web'] },
  ],
  [
    'publishStageCompleted',
    'deployment:stage:vercel:completed',
    () =>
      events.publishStageCompleted(
        {
          deploymentId,
          stage: 'vercel',
          status: DeploymentStatus.FAILURE,
          durationMs: 1234,
          errorMessage: 'boom',
        },
        { correlationId: 'corr-1' },
      ),
    'HIGH',
    { stage: 'vercel', status: 'DEPLOYMENT_STATUS_FAILURE', durationMs: 1234, errorMessage: 'boom' },
  ],
  [
    'publishDeploymentCompleted',
    'deployment:completed',
    () =>
      events.publishDeploymentCompleted(
        {
          deploymentId,
          status: DeploymentStatus.SUCCESS,
          totalDurationMs: 9000,
          stageResults: [{ stage: 'railway', status: DeploymentStatus.SUCCESS, durationMs: 4000 }],
        },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    {
      status: 'DEPLOYMENT_STATUS_SUCCESS',
      totalDurationMs: 9000,
      stageResults: [{ stage: 'railway', durationMs: 4000 }],
    },
  ],
  [
    'publishDeploymentFailed',
    'deployment:failed',
    () =>
      events.publishDeploymentFailed(
        { deploymentId, reason: 'stage railway failed', failedStage: 'railway', errorDetails: 'exit 1' },
        { correlationId: 'corr-1' },
      ),
    'CRITICAL',
    { reason: 'stage railway failed', failedStage: 'railway', errorDetails: 'exit 1' },
  ],
  [
    'publishRollbackInitiated',
    'rollback:initiated',
    () =>
      events.publishRollbackInitiated(
        {
          deploymentId,
          previousVersion: 'v1.4.1',
          reason: 'unhealthy',
          stagesToRollback: ['vercel', 'railway'],
        },
        { correlationId: 'corr-1' },
      ),
    'CRITICAL',
    { previousVersion: 'v1.4.1', reason: 'unhealthy', stagesToRollback: ['vercel', 'railway'] },
  ],
  [
    'publishRollbackCompleted',
    'rollback:completed',
    () =>
      events.publishRollbackCompleted(
        {
          deploymentId,
          status: DeploymentStatus.SUCCESS,
          restoredVersion: 'v1.4.1',
          durationMs: 800,
          rolledBackServices: ['api'],
        },
        { correlationId: 'corr-1' },
      ),
    'CRITICAL',
    {
      status: 'DEPLOYMENT_STATUS_SUCCESS',
      restoredVersion: 'v1.4.1',
      durationMs: 800,
      rolledBackServices: ['api'],
    },
  ],
  [
    'publishValidationStarted',
    'validation:started',
    () =>
      events.publishValidationStarted(
        { deploymentId, version: 'v1', environment: 'production', spec: { images: [{ name: 'api' }] } },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    { version: 'v1', spec: { images: [{ name: 'api' }] } },
  ],
  [
    'publishValidationCompleted',
    'validation:completed',
    () =>
      events.publishValidationCompleted(
        {
          deploymentId,
          result: ValidationResult.WARNINGS,
          executionStatus: ExecutionStatus.SUCCEEDED,
          checks: [
            { name: 'image:api', status: CheckStatus.WARNING, message: 'tag is mutable', durationMs: 12 },
          ],
        },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    {
      result: 'VALIDATION_RESULT_WARNINGS',
      executionStatus: 'EXECUTION_STATUS_SUCCEEDED',
      checks: [
        { name: 'image:api', status: 'CHECK_STATUS_WARNING', message: 'tag is mutable', durationMs: 12 },
      ],
    },
  ],
  [
    'publishDependencyCheckStarted',
    'dependency:check:started',
    () =>
      events.publishDependencyCheckStarted(
        { deploymentId, environment: 'production' },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    { environment: 'production' },
  ],
  [
    'publishDependencyCheckCompleted',
    'dependency:check:completed',
    () =>
      events.publishDependencyCheckCompleted(
        {
          deploymentId,
          result: DependencyCheckResult.SOME_DEGRADED,
          dependencies: [{ name: 'cache', type: 'redis', healthy: false, latencyMs: 3, critical: false }],
        },
        { correlationId: 'corr-1' },
      ),
    'NORMAL',
    {
      result: 'DEPENDENCY_CHECK_RESULT_SOME_DEGRADED',
      // Proto3 JSON leaves out fields at their default (healthy: false, critical: false).
      dependencies: [{ name: 'cache', type: 'redis', latencyMs: 3 }],
    },
  ],
  [
    'publishHealthCheckStarted',
    'health:check:started',
    () => events.publishHealthCheckStarted({ deploymentId, services: ['api'] }, { correlationId: 'corr-1' }),
    'HIGH',
    { services: ['api'] },
  ],
  [
    'publishHealthCheckCompleted',
    'health:check:completed',
    () =>
      events.publishHealthCheckCompleted(
        {
          deploymentId,
          status: HealthStatus.UNHEALTHY,
          rollbackRecommended: true,
          services: [
            { service: 'api', status: HealthStatus.UNHEALTHY, errorRate: 0.5, responseTimeP95Ms: 320 },
          ],
        },
        { correlationId: 'corr-1' },
      ),
    'HIGH',
    {
      status: 'HEALTH_STATUS_UNHEALTHY',
      rollbackRecommended: true,
      services: [
        { service: 'api', status: 'HEALTH_STATUS_UNHEALTHY', errorRate: 0.5, responseTimeP95Ms: 320 },
      ],
    },
  ],
  [
    'publishNotificationSent',
    'notification:sent',
    () =>
      events.publishNotificationSent(
        { deploymentId, channel: 'slack', target: '#deploys', outcome: NotificationOutcome.SENT },
        { correlationId: 'corr-1' },
      ),
    'LOW',
    { channel: 'slack', target: '#deploys', outcome: 'NOTIFICATION_OUTCOME_SENT' },
  ],
];

describe('RedisPublisher', () => {
  describe('each typed publish method', () => {
    it.each(cases)(
      '%s writes the documented fields to <prefix>:%s',
      async (_, type, publish, priority, data) => {
        setUp();
        await publish();
        const [entry, ...rest] = await readRaw(`${prefix}:${type}`);
        expect(rest).toHaveLength(0);
        expect(Object.keys(entry!).sort()).toEqual([...ENTRY_FIELDS].sort());
        expect(entry!.id).toMatch(UUID);
        expect(entry!.type).toBe(type);
        expect(entry!.source).toBe('test/publisher');
        expect(entry!.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
        expect(entry!.correlation_id).toBe('corr-1');
        expect(entry!.causation_id).toBe('');
        expect(entry!.deployment_id).toBe(deploymentId);
        expect(entry!.priority).toBe(priority);
        expect(entry!.schema).toMatch(/^materi\.events\.v1\.[A-Za-z]+Event$/);
        expect(entry!.content_type).toBe('application/json');
        expect(JSON.parse(entry!.data!)).toMatchObject({ deploymentId, ...data });
      },
    );
  });

  it('registers every stream it writes, per-stage streams included', async () => {
    setUp();
    await events.publishStageStarted({ deploymentId, stage: 'folio' });
    await events.publishDeploymentStarted({ deploymentId });
    expect((await redis.smembers(`${prefix}:registry:streams`)).sort()).toEqual([
      'deployment:stage:folio:started',
      'deployment:started',
    ]);
  });

  it('round-trips binary protobuf payloads', async () => {
    setUp();
    const binary = new RedisPublisher({ client: redis, prefix, contentType: 'application/protobuf' });
    const published = await binary.publish({
      type: 'rollback:completed',
      data: { deploymentId, status: DeploymentStatus.ROLLED_BACK, rolledBackServices: ['a', 'b'] },
    });
    const [entry] = await redis.xrange(published.stream, '-', '+');
    const event = decodeEntry(entry![1]);
    expect(event.contentType).toBe('application/protobuf');
    expect(event.data).toMatchObject({
      status: DeploymentStatus.ROLLED_BACK,
      rolledBackServices: ['a', 'b'],
    });
    expect(event.id).toBe(published.event.id);
  });

  it('takes correlation and causation ids from the event being handled', async () => {
    setUp();
    const first = await events.publishDeploymentStarted({ deploymentId }, { correlationId: 'corr-flow' });
    const second = await runInEventContext(
      { correlationId: first.event.correlationId, eventId: first.event.id, deploymentId },
      () => events.publishValidationStarted({ deploymentId, version: 'v1' }),
    );
    const [raw] = await readRaw(`${prefix}:validation:started`);
    expect(raw!.correlation_id).toBe('corr-flow');
    expect(raw!.causation_id).toBe(first.event.id);
    expect(second.event.causationId).toBe(first.event.id);
    const explicit = await runInEventContext({ correlationId: 'ignored', eventId: 'x', deploymentId }, () =>
      events.publishDependencyCheckStarted({ deploymentId }, { correlationId: 'mine', causationId: 'cause' }),
    );
    expect(explicit.event.correlationId).toBe('mine');
    expect(explicit.event.causationId).toBe('cause');
  });

  it('generates a new correlation id when none is given or inherited', async () => {
    setUp();
    const a = await events.publishDeploymentStarted({ deploymentId });
    const b = await events.publishDeploymentStarted({ deploymentId });
    expect(a.event.correlationId).toMatch(UUID);
    expect(a.event.correlationId).not.toBe(b.event.correlationId);
  });

  it('publishes a batch in one pipeline, keeping the order', async () => {
    setUp();
    const batch = Array.from({ length: 50 }, (_, i) => ({
      type: i % 2 ? 'deployment:stage:api:started' : 'deployment:started',
      data: { deploymentId: `dep-${i}` },
    }));
    const published = await publisher.publishBatch(batch);
    expect(published.map((p) => p.event.deploymentId)).toEqual(batch.map((b) => b.data.deploymentId));
    expect(await redis.xlen(`${prefix}:deployment:started`)).toBe(25);
    expect(await redis.xlen(`${prefix}:deployment:stage:api:started`)).toBe(25);
  });

  it('publishes a batch larger than one pipeline in order, each event with its own entry id', async () => {
    setUp();
    const batch = Array.from({ length: 730 }, (_, i) => ({
      type: i % 3 ? 'deployment:stage:api:started' : 'deployment:started',
      data: { deploymentId: `dep-${i}` },
    }));
    const published = await publisher.publishBatch(batch);
    for (const type of ['deployment:started', 'deployment:stage:api:started']) {
      const stored = await redis.xrange(`${prefix}:${type}`, '-', '+');
      const expected = published.filter((p) => p.event.type === type);
      expect(stored.map(([id]) => id)).toEqual(expected.map((p) => p.entryId));
      expect(
        stored.map(([, fields]) => JSON.parse(fields[fields.indexOf('data') + 1]!).deploymentId),
      ).toEqual(expected.map((p) => p.event.deploymentId));
    }
  });

  it('writes nothing of a large batch when one of its last events is malformed', async () => {
    setUp();
    const batch = Array.from({ length: 500 }, (_, i) => ({
      type: 'deployment:started',
      data: i === 480 ? ({ deploymentId: 'bad', services: 'api' } as never) : { deploymentId: `dep-${i}` },
    }));
    await expect(publisher.publishBatch(batch)).rejects.toThrow(/services: expected a list/);
    expect(await redis.exists(`${prefix}:deployment:started`)).toBe(0);
  });

  it('rejects malformed input with a clear error and writes nothing', async () => {
    setUp();
    await expect(publisher.publish({ type: 'deployment:exploded', data: {} })).rejects.toThrow(
      UnknownEventTypeError,
    );
    await expect(publisher.publish({ type: 'deployment:stage:No Spaces:started', data: {} })).rejects.toThrow(
      /unknown event type/,
    );
    await expect(
      publisher.publish({ type: 'deployment:started', data: { deploymentId, versoin: 'x' } as never }),
    ).rejects.toThrow(EventValidationError);
    await expect(
      publisher.publishBatch([
        { type: 'deployment:started', data: { deploymentId } },
        { type: 'deployment:started', data: { services: 'api' } as never },
      ]),
    ).rejects.toThrow(/services: expected a list/);
    expect(await redis.exists(`${prefix}:deployment:started`)).toBe(0);
  });

  describe('trimming', () => {
    it('never drops entries a consumer group has not acknowledged', async () => {
      setUp();
      const key = `${prefix}:deployment:started`;
      const ids = (
        await publisher.publishBatch(
          Array.from({ length: 10 }, () => ({ type: 'deployment:started', data: { deploymentId } })),
        )
      ).map((p) => p.entryId);
      await redis.xgroup('CREATE', key, 'readers', '0');
      await redis.xgroup('CREATE', key, 'laggard', '0');
      await redis.xreadgroup('GROUP', 'readers', 'c1', 'COUNT', 6, 'STREAMS', key, '>');
      await redis.xack(key, 'readers', ids[0]!, ids[1]!, ids[2]!);
      await redis.xreadgroup('GROUP', 'laggard', 'c1', 'COUNT', 8, 'STREAMS', key, '>');
      await redis.xack(key, 'laggard', ...ids.slice(0, 8));
      // readers: entries 3..5 pending, 6..9 never delivered; laggard: 8..9 never delivered.
      const result = await publisher.trim('deployment:started', { maxLen: 1 });
      expect(result.protectedByGroups).toBe(true);
      expect(result.removed).toBe(3);
      const left = (await redis.xrange(key, '-', '+')).map(([id]) => id);
      expect(left).toEqual(ids.slice(3));
    });

    it('trims to MAXLEN on a stream without groups', async () => {
      setUp();
      await publisher.publishBatch(
        Array.from({ length: 20 }, () => ({ type: 'notification:sent', data: { deploymentId } })),
      );
      const result = await publisher.trim('notification:sent', { maxLen: 5 });
      expect(result).toMatchObject({ removed: 15, protectedByGroups: false });
      expect(await redis.xlen(`${prefix}:notification:sent`)).toBe(5);
    });

    it('trims by age only what every group acknowledged', async () => {
      setUp();
      const key = `${prefix}:deployment:failed`;
      const old = await publisher.publishBatch(
        Array.from({ length: 4 }, () => ({
          type: 'deployment:failed',
          data: { deploymentId },
          time: new Date(),
        })),
      );
      await redis.xgroup('CREATE', key, 'g', '0');
      await redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', 4, 'STREAMS', key, '>');
      await redis.xack(key, 'g', old[0]!.entryId, old[1]!.entryId);
      await new Promise((r) => setTimeout(r, 20));
      const result = await publisher.trim('deployment:failed', { maxAgeMs: 1 });
      expect(result.removed).toBe(2);
      expect((await redis.xrange(key, '-', '+')).map(([id]) => id)).toEqual([
        old[2]!.entryId,
        old[3]!.entryId,
      ]);
    });
  });

  describe('when Redis is unreachable or refuses', () => {
    it('fails with a clear error naming the stream, without hanging', async () => {
      setUp();
      const dead = createRedisClient({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 500 });
      dead.on('error', () => {});
      const offline = new RedisPublisher({ client: dead, prefix, retry: { attempts: 3, baseMs: 20 } });
      const started = Date.now();
      const error = await offline
        .publish({ type: 'deployment:started', data: { deploymentId } })
        .catch((e) => e);
      dead.disconnect();
      expect(error).toBeInstanceOf(PublishError);
      expect(error.message).toContain(`${prefix}:deployment:started`);
      expect(error.message).toMatch(/ECONNREFUSED|Connection is closed|max retries/i);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('does not retry a refusal that cannot go away (WRONGTYPE)', async () => {
      setUp();
      await redis.set(`${prefix}:deployment:started`, 'not a stream');
      const error = await publisher
        .publish({ type: 'deployment:started', data: { deploymentId } })
        .catch((e) => e);
      expect(error).toBeInstanceOf(PublishError);
      expect(error.message).toMatch(/WRONGTYPE/);
    });

    it('works with an ACL user and password in the URL', async () => {
      setUp();
      const user = `materi-test-${prefix.slice(-8)}`;
      await redis.call('ACL', 'SETUSER', user, 'on', '>s3cret-pass', `~${prefix}:*`, '+@all');
      try {
        const url = new URL(TEST_REDIS_URL);
        url.username = user;
        url.password = 's3cret-pass';
        const client = createRedisClient({ url: url.toString() });
        const scoped = new RedisPublisher({ client, prefix, ownsClient: true });
        const published = await scoped.publish({ type: 'deployment:started', data: { deploymentId } });
        expect(published.entryId).toMatch(/^\d+-\d+$/);
        await scoped.close();
      } finally {
        await redis.call('ACL', 'DELUSER', user);
      }
    });
  });
});
