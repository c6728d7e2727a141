import { create, type DescMessage, ScalarType, toJson } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { EventDecodeError, EventValidationError, UnknownEventTypeError } from '../../src/errors/index.js';
import {
  buildPayload,
  type DeploymentEvent,
  DeploymentStageCompletedEventSchema,
  DeploymentStatus,
  decodeEntry,
  encodeData,
  encodeEntry,
  FIXED_EVENT_TYPES,
  fieldsToRecord,
  matchesEventPattern,
  resolveEventType,
} from '../../src/events/index.js';

function stageCompleted(contentType: DeploymentEvent['contentType']): DeploymentEvent {
  return {
    id: '3b241101-e2bb-4255-8caf-4136c566a962',
    type: 'deployment:stage:vercel:completed',
    source: 'test',
    time: new Date('2026-01-08T10:00:00.123Z'),
    correlationId: 'corr-1',
    causationId: 'cause-1',
    deploymentId: 'dep-1',
    priority: 'HIGH',
    schema: DeploymentStageCompletedEventSchema.typeName,
    contentType,
    data: create(DeploymentStageCompletedEventSchema, {
      deploymentId: 'dep-1',
      stage: 'vercel',
      status: DeploymentStatus.FAILURE,
      durationMs: 4200,
      errorMessage: 'build failed',
      artifacts: [{ name: 'url', kind: 'url', value: 'https://example.test' }],
    }),
  };
}

describe('event catalog', () => {
  it('knows the 13 seed events, notification:sent and alert:raised', () => {
    expect(FIXED_EVENT_TYPES).toHaveLength(13);
    expect(FIXED_EVENT_TYPES).toContain('notification:sent');
    expect(resolveEventType('deployment:stage:railway:started').schema.typeName).toBe(
      'materi.events.v1.DeploymentStageStartedEvent',
    );
    expect(resolveEventType('deployment:stage:railway:completed').stage).toBe('railway');
  });

  it('gives failures and rollbacks CRITICAL priority and stages HIGH', () => {
    expect(resolveEventType('deployment:failed').defaultPriority).toBe('CRITICAL');
    expect(resolveEventType('rollback:initiated').defaultPriority).toBe('CRITICAL');
    expect(resolveEventType('rollback:completed').defaultPriority).toBe('CRITICAL');
    expect(resolveEventType('deployment:stage:folio:started').defaultPriority).toBe('HIGH');
    expect(resolveEventType('deployment:started').defaultPriority).toBe('NORMAL');
  });

  it('rejects unknown types and unsafe stage names', () => {
    expect(() => resolveEventType('deployment:exploded')).toThrow(UnknownEventTypeError);
    expect(() => resolveEventType('deployment:stage:Bad Name:started')).toThrow(UnknownEventTypeError);
    expect(() => resolveEventType('deployment:stage::started')).toThrow(UnknownEventTypeError);
  });

  it('matches subscription patterns segment by segment', () => {
    expect(matchesEventPattern('deployment:stage:*:completed', 'deployment:stage:vercel:completed')).toBe(
      true,
    );
    expect(matchesEventPattern('deployment:stage:*:completed', 'deployment:stage:vercel:started')).toBe(
      false,
    );
    expect(matchesEventPattern('deployment:stage:*:completed', 'deployment:completed')).toBe(false);
    expect(matchesEventPattern('**', 'health:check:started')).toBe(true);
    expect(matchesEventPattern('validation:started', 'validation:started')).toBe(true);
  });
});

describe('stream entry codec', () => {
  it('round-trips an event through the JSON mapping', () => {
    const event = stageCompleted('application/json');
    const fields = encodeEntry(event);
    const record = fieldsToRecord(fields);
    expect(JSON.parse(record.data!)).toMatchObject({
      stage: 'vercel',
      status: 'DEPLOYMENT_STATUS_FAILURE',
      durationMs: 4200,
    });
    const decoded = decodeEntry(fields);
    expect(decoded).toEqual(event);
  });

  it('round-trips an event through binary protobuf', () => {
    const event = stageCompleted('application/protobuf');
    const record = fieldsToRecord(encodeEntry(event));
    expect(record.content_type).toBe('application/protobuf');
    expect(() => JSON.parse(record.data!)).toThrow();
    expect(decodeEntry(record)).toEqual(event);
  });

  const broken: [string, (r: Record<string, string>) => void, string][] = [
    ['a missing id', (r) => delete r.id, 'id'],
    ['an id that is no UUID', (r) => (r.id = 'nope'), 'id'],
    ['an unknown type', (r) => (r.type = 'deployment:exploded'), 'type'],
    ['a bad time', (r) => (r.time = 'yesterday'), 'time'],
    ['a bad priority', (r) => (r.priority = 'URGENT'), 'priority'],
    [
      'a schema that does not match the type',
      (r) => (r.schema = 'materi.events.v1.DeploymentStartedEvent'),
      'schema',
    ],
    ['a bad content type', (r) => (r.content_type = 'text/yaml'), 'content_type'],
    ['data that is not JSON', (r) => (r.data = '{"stage":'), 'data'],
    ['data of the wrong shape', (r) => (r.data = '{"durationMs":"soon"}'), 'data'],
    ['a missing correlation id', (r) => delete r.correlation_id, 'correlation_id'],
  ];
  it.each(broken)('rejects an entry with %s, naming the field', (_, breakIt, field) => {
    const record = fieldsToRecord(encodeEntry(stageCompleted('application/json')));
    breakIt(record);
    let error: unknown;
    try {
      decodeEntry(record);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EventDecodeError);
    expect((error as EventDecodeError).field).toBe(field);
    expect((error as Error).message).toContain(`"${field}"`);
  });
});

describe('payload validation', () => {
  const spec = resolveEventType('deployment:started');
  it('rejects unknown fields by name', () => {
    expect(() => buildPayload(spec, { deploymentId: 'd', versoin: 'v1' })).toThrow(/versoin: unknown field/);
  });
  it('rejects values of the wrong type', () => {
    expect(() => buildPayload(spec, { deploymentId: 'd', services: 'api' })).toThrow(EventValidationError);
    expect(() =>
      buildPayload(resolveEventType('deployment:completed'), { stageResults: [{ durationMs: 'slow' }] }),
    ).toThrow(/stageResults\[0\].durationMs: expected an integer/);
  });
  it('rejects a payload that is not an object', () => {
    expect(() => buildPayload(spec, 'v1')).toThrow(/data: expected an object/);
  });
});

describe('the JSON writer of payloads', () => {
  /** A message of `desc` with every field set to a non-default value, nested messages too. */
  function rich(desc: DescMessage, depth = 0): Record<string, unknown> {
    const init: Record<string, unknown> = {};
    for (const field of desc.fields) {
      const scalar = (type: ScalarType) =>
        type === ScalarType.STRING
          ? 'text "quoted" ✓'
          : type === ScalarType.BOOL
            ? true
            : type === ScalarType.DOUBLE
              ? 0.25
              : 7;
      const nested = (m: DescMessage): unknown =>
        m.typeName === 'google.protobuf.Struct'
          ? { a: 1, b: ['c', null], d: { e: true } }
          : m.typeName === 'google.protobuf.Timestamp'
            ? { seconds: 1_767_000_000n, nanos: 5_000_000 }
            : depth < 3
              ? rich(m, depth + 1)
              : {};
      if (field.fieldKind === 'scalar') init[field.localName] = scalar(field.scalar);
      else if (field.fieldKind === 'enum') init[field.localName] = field.enum.values[1]!.number;
      else if (field.fieldKind === 'message') init[field.localName] = nested(field.message);
      else if (field.fieldKind === 'list') {
        init[field.localName] =
          field.listKind === 'message'
            ? [nested(field.message), nested(field.message)]
            : field.listKind === 'enum'
              ? [field.enum.values[1]!.number, field.enum.values[2]!.number]
              : [scalar(field.scalar), scalar(field.scalar)];
      }
    }
    return init;
  }

  it.each([...FIXED_EVENT_TYPES, 'deployment:stage:api:started', 'deployment:stage:api:completed'])(
    'writes %s exactly as the proto3 JSON mapping of protobuf-es',
    (type) => {
      const spec = resolveEventType(type);
      for (const message of [create(spec.schema, rich(spec.schema) as never), create(spec.schema)]) {
        const written = encodeData(spec, message, 'application/json');
        expect(JSON.parse(written)).toEqual(toJson(spec.schema, message));
      }
    },
  );
});
