import { describe, expect, it } from 'vitest';
import { EventValidationError } from '../../src/errors/index.js';
import {
  buildPayload,
  checkRequiredFields,
  DeploymentStatus,
  FIXED_EVENT_TYPES,
  parsePayloadJson,
  resolveEventType,
} from '../../src/events/index.js';

describe('required payload fields', () => {
  it('every event type names its required fields, and each is a field of its payload', () => {
    const types = [...FIXED_EVENT_TYPES, 'deployment:stage:web:started', 'deployment:stage:web:completed'];
    for (const type of types) {
      const spec = resolveEventType(type);
      expect(spec.required.length, type).toBeGreaterThan(0);
      const fields = spec.schema.fields.map((f) => f.localName);
      for (const name of spec.required) expect(fields, `${type}: ${name}`).toContain(name);
    }
    expect(resolveEventType('deployment:started').required).toEqual([
      'deploymentId',
      'version',
      'environment',
    ]);
  });

  it('parsePayloadJson names the first missing field', () => {
    const spec = resolveEventType('deployment:started');
    expect(() => parsePayloadJson(spec, '{}')).toThrow(
      new EventValidationError('deployment:started', '"deploymentId" is required'),
    );
    expect(() => parsePayloadJson(spec, '{"deploymentId":"d","environment":"prod"}')).toThrow(
      /"version" is required$/,
    );
    expect(() => parsePayloadJson(spec, '{"deploymentId":"d","version":"v1","environment":""}')).toThrow(
      /"environment" is required$/,
    );
    expect(parsePayloadJson(spec, '{"deploymentId":"d","version":"v1","environment":"prod"}')).toMatchObject({
      version: 'v1',
    });
  });

  it('counts a zero enum and an empty list as missing', () => {
    const completed = resolveEventType('deployment:stage:api:completed');
    const unset = buildPayload(completed, { deploymentId: 'd', stage: 'api' });
    expect(() => checkRequiredFields(completed, unset)).toThrow(/"status" is required$/);
    const set = buildPayload(completed, {
      deploymentId: 'd',
      stage: 'api',
      status: DeploymentStatus.SUCCESS,
    });
    expect(() => checkRequiredFields(completed, set)).not.toThrow();
    const withList = { ...resolveEventType('deployment:started'), required: ['services'] };
    expect(() => checkRequiredFields(withList, buildPayload(withList, { services: [] }))).toThrow(
      /"services" is required$/,
    );
  });
});
