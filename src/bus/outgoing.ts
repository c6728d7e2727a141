import { randomUUID } from 'node:crypto';
import { type EventSpec, resolveEventType } from '../events/catalog.js';
import { buildPayload } from '../events/codec.js';
import type { ContentType, DeploymentEvent } from '../events/envelope.js';
import { currentEventContext } from './context.js';
import type { OutgoingEvent } from './types.js';

/** Publisher-wide defaults for envelope fields. */
export interface EnvelopeDefaults {
  source: string;
  contentType: ContentType;
}

/**
 * Fills in the envelope of an outgoing event (id, time, correlation and causation from the
 * handler context, priority from the catalog) and checks the payload against its schema.
 * Shared by every backend so they write identical entries.
 */
export function prepareEvent(
  input: OutgoingEvent,
  defaults: EnvelopeDefaults,
): { event: DeploymentEvent; spec: EventSpec } {
  const spec = resolveEventType(input.type);
  const data = buildPayload(spec, input.data);
  const context = currentEventContext();
  const dataDeploymentId = (data as { deploymentId?: unknown }).deploymentId;
  const event: DeploymentEvent = {
    id: input.id ?? randomUUID(),
    type: input.type,
    source: input.source ?? defaults.source,
    time: input.time ?? new Date(),
    correlationId: input.correlationId ?? context?.correlationId ?? randomUUID(),
    causationId: input.causationId ?? context?.eventId ?? '',
    deploymentId:
      input.deploymentId ??
      (typeof dataDeploymentId === 'string' && dataDeploymentId !== '' ? dataDeploymentId : undefined) ??
      context?.deploymentId ??
      '',
    priority: input.priority ?? spec.defaultPriority,
    schema: spec.schema.typeName,
    contentType: input.contentType ?? defaults.contentType,
    data,
  };
  return { event, spec };
}
