import type { JsonObject } from '@bufbuild/protobuf';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runInEventContext } from '../../../src/bus/context.js';
import { RedisPublisher } from '../../../src/bus/redis/publisher.js';
import type { HandlerContext } from '../../../src/bus/types.js';
import { UnrecoverableError } from '../../../src/errors/index.js';
import {
  type DependencyCheckCompletedEvent,
  DependencyCheckResult,
  type DeploymentEvent,
  decodeEntry,
  ExecutionStatus,
  streamKey,
} from '../../../src/events/index.js';
import {
  createDependencyCheckerHandler,
  DEPENDENCY_CHECKER_GROUP,
} from '../../../src/workers/dependency-checker/index.js';
import { testHandlerContext } from '../../support/handler-context.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../../support/redis.js';

let redis: Redis;
let prefix: string;
let publisher: RedisPublisher;

beforeAll(() => {
  redis = testRedis();
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix('dependency-checker');
  publisher = new RedisPublisher({ client: redis, prefix, source: 'materi/printery-dependency-checker' });
});
afterEach(async () => {
  await deletePrefix(redis, prefix);
});

/** Publishes a dependency:check:started event and reads it back the way a consumer would. */
async function startedEvent(spec: JsonObject): Promise<DeploymentEvent> {
  const published = await publisher.publish({
    type: 'dependency:check:started',
    correlationId: 'corr-deps-1',
    data: { deploymentId: 'dep-9', environment: 'production', spec, deadlineSeconds: 60 },
  });
  const [[, fields]] = (await redis.xrange(published.stream, published.entryId, published.entryId)) as [
    [string, string[]],
  ];
  return decodeEntry(fields);
}

function contextFor(event: DeploymentEvent): HandlerContext {
  return testHandlerContext({
    stream: streamKey(prefix, event.type),
    group: DEPENDENCY_CHECKER_GROUP,
    publisher,
  });
}

async function handle(event: DeploymentEvent, env: Record<string, string> = {}): Promise<void> {
  const handler = createDependencyCheckerHandler({ env });
  await runInEventContext(
    { correlationId: event.correlationId, eventId: event.id, deploymentId: event.deploymentId },
    () => handler(event, contextFor(event)),
  );
}

async function completedEvents(): Promise<DeploymentEvent<DependencyCheckCompletedEvent>[]> {
  const entries = await redis.xrange(streamKey(prefix, 'dependency:check:completed'), '-', '+');
  return entries.map(([, fields]) => decodeEntry(fields) as DeploymentEvent<DependencyCheckCompletedEvent>);
}

describe('dependency checker handler', () => {
  it('publishes dependency:check:completed with a status per dependency', async () => {
    const started = await startedEvent({
      timeoutMs: 1000,
      retries: 0,
      dependencies: [
        { name: 'cache', service: 'api', type: 'redis', url: '${REDIS_URL}', critical: true },
        { name: 'search', service: 'api', type: 'tcp', host: '127.0.0.1', port: 1, critical: false },
      ],
    });
    await handle(started, { REDIS_URL: TEST_REDIS_URL });

    const [completed, ...others] = await completedEvents();
    expect(others).toHaveLength(0);
    expect(completed).toMatchObject({
      type: 'dependency:check:completed',
      correlationId: 'corr-deps-1',
      causationId: started.id,
      deploymentId: 'dep-9',
    });
    const data = completed!.data;
    expect(data.result).toBe(DependencyCheckResult.SOME_DEGRADED);
    expect(data.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
    expect(
      data.dependencies.map((d) => [d.name, d.type, d.service, d.healthy, d.critical, d.attempts]),
    ).toEqual([
      ['cache', 'redis', 'api', true, true, 1],
      ['search', 'tcp', 'api', false, false, 1],
    ]);
    expect(data.dependencies[0]!.message).toBe('PING answered PONG');
    expect(data.dependencies[1]!.message).toBe('127.0.0.1:1 refused the connection (ECONNREFUSED)');
    expect(data.message).toMatch(/^1 of 2 dependencies unhealthy: search: /);
  });

  it('publishes ERRORED + ALL_UNHEALTHY naming the field for a malformed spec', async () => {
    const started = await startedEvent({
      dependencies: [{ name: 'db', type: 'mongodb', url: 'mongodb://x' }],
    });
    await handle(started);
    const [completed] = await completedEvents();
    expect(completed!.data).toMatchObject({
      result: DependencyCheckResult.ALL_UNHEALTHY,
      executionStatus: ExecutionStatus.ERRORED,
      message:
        'invalid dependency spec: dependencies[0].type: must be one of http, tcp, postgres, redis, mysql',
    });
  });

  it('never puts a resolved secret in the published event', async () => {
    const started = await startedEvent({
      retries: 0,
      dependencies: [{ name: 'db', type: 'postgres', url: '${DATABASE_URL}' }],
    });
    await handle(started, { DATABASE_URL: 'postgres://root:event-secret-pw@127.0.0.1:1/app' });
    const raw = await redis.xrange(streamKey(prefix, 'dependency:check:completed'), '-', '+');
    expect(JSON.stringify(raw)).not.toContain('event-secret-pw');
    const [completed] = await completedEvents();
    expect(completed!.data.result).toBe(DependencyCheckResult.ALL_UNHEALTHY);
  });

  it('refuses an event of another type as unrecoverable', async () => {
    const published = await publisher.publish({
      type: 'validation:started',
      data: { deploymentId: 'dep-9', spec: {} },
    });
    const [[, fields]] = (await redis.xrange(published.stream, '-', '+')) as [[string, string[]]];
    await expect(handle(decodeEntry(fields))).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await completedEvents()).toHaveLength(0);
  });
});
