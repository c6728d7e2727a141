import type { JsonObject } from '@bufbuild/protobuf';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runInEventContext } from '../../../src/bus/context.js';
import { RedisPublisher } from '../../../src/bus/redis/publisher.js';
import type { HandlerContext } from '../../../src/bus/types.js';
import { UnrecoverableError } from '../../../src/errors/index.js';
import {
  CheckStatus,
  type DeploymentEvent,
  decodeEntry,
  ExecutionStatus,
  streamKey,
  type ValidationCompletedEvent,
  ValidationResult,
} from '../../../src/events/index.js';
import {
  createValidatorHandler,
  resultEventId,
  VALIDATOR_GROUP,
} from '../../../src/workers/validator/index.js';
import { testHandlerContext } from '../../support/handler-context.js';
import { deletePrefix, testRedis, uniquePrefix } from '../../support/redis.js';

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
  prefix = uniquePrefix('validator');
  publisher = new RedisPublisher({ client: redis, prefix, source: 'materi/printery-validator' });
});
afterEach(async () => {
  await deletePrefix(redis, prefix);
});

/** Publishes a validation:started event and reads it back the way a consumer would. */
async function startedEvent(spec: JsonObject | undefined, deadlineSeconds = 60): Promise<DeploymentEvent> {
  const published = await publisher.publish({
    type: 'validation:started',
    correlationId: 'corr-validate-1',
    data: { deploymentId: 'dep-7', version: 'v1.4.2', environment: 'production', spec, deadlineSeconds },
  });
  const [[, fields]] = (await redis.xrange(published.stream, published.entryId, published.entryId)) as [
    [string, string[]],
  ];
  return decodeEntry(fields);
}

function contextFor(event: DeploymentEvent): HandlerContext {
  return testHandlerContext({ stream: streamKey(prefix, event.type), group: VALIDATOR_GROUP, publisher });
}

/** Runs the handler as the router does: inside the handled event's context. */
async function handle(event: DeploymentEvent, env: Record<string, string> = {}): Promise<void> {
  const handler = createValidatorHandler({ env });
  await runInEventContext(
    { correlationId: event.correlationId, eventId: event.id, deploymentId: event.deploymentId },
    () => handler(event, contextFor(event)),
  );
}

async function completedEvents(): Promise<DeploymentEvent<ValidationCompletedEvent>[]> {
  const entries = await redis.xrange(streamKey(prefix, 'validation:completed'), '-', '+');
  return entries.map(([, fields]) => decodeEntry(fields) as DeploymentEvent<ValidationCompletedEvent>);
}

describe('validator handler', () => {
  it('publishes validation:completed with one result per check', async () => {
    const started = await startedEvent({
      env: [
        { service: 'api', source: { type: 'process' }, required: ['DATABASE_URL'] },
        { service: 'web', source: { type: 'process' }, required: ['API_URL'], blocking: false },
      ],
    });
    await handle(started, { DATABASE_URL: 'postgres://db/app' });

    const [completed, ...others] = await completedEvents();
    expect(others).toHaveLength(0);
    expect(completed).toMatchObject({
      type: 'validation:completed',
      id: resultEventId(started.id, 'validation:completed'),
      correlationId: 'corr-validate-1',
      causationId: started.id,
      deploymentId: 'dep-7',
      schema: 'materi.events.v1.ValidationCompletedEvent',
    });
    const data = completed!.data;
    expect(data.deploymentId).toBe('dep-7');
    expect(data.result).toBe(ValidationResult.WARNINGS);
    expect(data.executionStatus).toBe(ExecutionStatus.SUCCEEDED);
    expect(data.message).toBe(
      'passed with 1 warning: env:web:process: missing: API_URL (in the worker environment)',
    );
    expect(
      data.checks.map((c) => ({ name: c.name, kind: c.kind, status: c.status, message: c.message })),
    ).toEqual([
      {
        name: 'env:api:process',
        kind: 'env',
        status: CheckStatus.PASSED,
        message: '1 required variable set in the worker environment',
      },
      {
        name: 'env:web:process',
        kind: 'env',
        status: CheckStatus.WARNING,
        message: 'missing: API_URL (in the worker environment)',
      },
    ]);
    expect(data.checks.every((c) => Number.isInteger(c.durationMs) && c.durationMs >= 0)).toBe(true);
  });

  it('publishes ERRORED + FAILED naming the field for a malformed spec instead of throwing', async () => {
    const started = await startedEvent({ images: [{ service: 'api', img: 'ghcr.io/x/api:v2' }] });
    await handle(started);
    const [completed] = await completedEvents();
    expect(completed!.data.result).toBe(ValidationResult.FAILED);
    expect(completed!.data.executionStatus).toBe(ExecutionStatus.ERRORED);
    expect(completed!.data.message).toBe('invalid validation spec: images[0].img: unknown setting');
  });

  it('publishes ERRORED when the event carries no spec', async () => {
    const started = await startedEvent(undefined);
    await handle(started);
    const [completed] = await completedEvents();
    expect(completed!.data.executionStatus).toBe(ExecutionStatus.ERRORED);
    expect(completed!.data.message).toBe('invalid validation spec: the validation:started event has no spec');
  });

  it('publishes the same event id when a redelivered request is handled again', async () => {
    const started = await startedEvent({ env: [{ required: ['HOME_DIR'] }] });
    await handle(started, { HOME_DIR: '/srv' });
    await handle(started, { HOME_DIR: '/srv' });
    const events = await completedEvents();
    expect(events).toHaveLength(2);
    expect(events[0]!.id).toBe(events[1]!.id);
  });

  it('refuses an event of another type as unrecoverable and publishes nothing', async () => {
    const published = await publisher.publish({
      type: 'dependency:check:started',
      data: { deploymentId: 'dep-7', spec: {} },
    });
    const [[, fields]] = (await redis.xrange(published.stream, '-', '+')) as [[string, string[]]];
    const event = decodeEntry(fields);
    await expect(handle(event)).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await completedEvents()).toHaveLength(0);
  });
});
