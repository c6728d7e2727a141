import { create, type DescMessage, fromJsonString, ScalarType, toJson } from '@bufbuild/protobuf';
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
  isKnownEventPattern,
  matchesEventPattern,
  readJsonPayload,
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
  it('knows the 13 seed events, notification:sent, alert:raised and the two approval events', () => {
    expect(FIXED_EVENT_TYPES).toHaveLength(15);
    expect(FIXED_EVENT_TYPES).toContain('notification:sent');
    expect(resolveEventType('approval:requested').defaultPriority).toBe('HIGH');
    expect(resolveEventType('approval:completed').schema.typeName).toBe(
      'materi.events.v1.ApprovalCompletedEvent',
    );
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

  it('knows which types and patterns can ever match a published event', () => {
    for (const known of [
      'deployment:started',
      'alert:raised',
      'deployment:stage:web:started',
      'deployment:stage:*:completed',
      'deployment:stage:web:*',
      '*:stage:*:*',
      'rollback:*',
      'deployment:*',
      '*:check:completed',
      '**',
    ])
      expect(isKnownEventPattern(known), known).toBe(true);
    for (const unknown of [
      'deployment:exploded',
      'deploy:*',
      'deployment:stage:Web:started',
      'deployment:stage:*:finished',
      'deployment:stage:*',
      'deployment:**',
      '*',
      '',
    ])
      expect(isKnownEventPattern(unknown), unknown).toBe(false);
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

describe('JSON payload reader', () => {
  // A seeded generator of proto3 JSON for any message of the catalog: camelCase or proto names,
  // enums by name or number, Timestamps, Structs, lists and nested messages.
  function generator(seed: number) {
    let state = seed;
    const random = () => {
      state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    function scalar(type: ScalarType): unknown {
      switch (type) {
        case ScalarType.STRING:
          return pick(['', 'api', 'v1.4.2', 'ünïcødé ✓', '"quoted"\n']);
        case ScalarType.BOOL:
          return random() < 0.5;
        case ScalarType.DOUBLE:
          return pick([0, 1.5, -2.25, 1e300]);
        default:
          return pick([0, 1, 4200, -7, 2 ** 31 - 1]);
      }
    }
    function message(desc: DescMessage, depth = 0): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      for (const field of desc.fields) {
        if (random() < 0.3) continue;
        const key = random() < 0.8 ? field.jsonName : field.name;
        out[key] = value(field, depth);
      }
      if (random() < 0.2) out.someFutureField = { added: 'later' };
      return out;
    }
    function single(
      kind: 'scalar' | 'enum' | 'message',
      field: DescMessage['fields'][number],
      depth: number,
    ) {
      if (kind === 'scalar') return scalar((field as { scalar: ScalarType }).scalar);
      if (kind === 'enum') {
        const values = (field as { enum: { values: { name: string; number: number }[] } }).enum.values;
        const v = pick(values);
        return random() < 0.7 ? v.name : v.number;
      }
      const desc = (field as { message: DescMessage }).message;
      if (desc.typeName === 'google.protobuf.Timestamp')
        return pick(['2026-11-29T21:40:01Z', '2026-01-08T10:00:00.123456Z']);
      if (desc.typeName === 'google.protobuf.Struct')
        return { replicas: 3, labels: { tier: 'web' }, on: true, none: null };
      return depth > 3 ? {} : message(desc, depth + 1);
    }
    function value(field: DescMessage['fields'][number], depth: number): unknown {
      if (field.fieldKind === 'list') {
        return Array.from({ length: Math.floor(random() * 3) }, () =>
          single(field.listKind, field as never, depth),
        );
      }
      return single(field.fieldKind as 'scalar' | 'enum' | 'message', field, depth);
    }
    return message;
  }

  const schemas = [
    ...FIXED_EVENT_TYPES.map((t) => resolveEventType(t).schema),
    resolveEventType('deployment:stage:api:started').schema,
    resolveEventType('deployment:stage:api:completed').schema,
  ];

  it('reads 1,500 generated payloads exactly as protobuf-es does', () => {
    let compared = 0;
    for (const [i, schema] of schemas.entries()) {
      const generate = generator(i + 1);
      for (let n = 0; n < 100; n++) {
        const raw = JSON.stringify(generate(schema));
        expect(readJsonPayload(schema, raw)).toEqual(
          fromJsonString(schema, raw, { ignoreUnknownFields: true }),
        );
        compared++;
      }
    }
    expect(compared).toBe(schemas.length * 100);
  });

  it('leaves what it does not read plainly to protobuf-es: same result, or the same error', () => {
    const schema = DeploymentStageCompletedEventSchema;
    const cases = [
      '{"durationMs":"4200"}',
      '{"durationMs":4200.5}',
      '{"durationMs":4294967296}',
      '{"status":"NOT_A_STATUS"}',
      '{"status":99}',
      '{"stage":null}',
      '{"artifacts":null}',
      '{"artifacts":[null]}',
      '{"deploymentId":"a","deployment_id":"b"}',
      '{"stage":7}',
      '[]',
      '"text"',
      '{"durationMs":',
    ];
    for (const raw of cases) {
      let expected: unknown;
      let expectedError: string | undefined;
      try {
        expected = fromJsonString(schema, raw, { ignoreUnknownFields: true });
      } catch (error) {
        expectedError = (error as Error).message;
      }
      if (expectedError) expect(() => readJsonPayload(schema, raw), raw).toThrow(expectedError);
      else expect(readJsonPayload(schema, raw), raw).toEqual(expected);
    }
  });
});
