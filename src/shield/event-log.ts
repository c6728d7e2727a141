import { type DescMessage, fromJson, type JsonObject, type MessageShape, toJson } from '@bufbuild/protobuf';
import type { Insertable, Selectable } from 'kysely';
import type { PriorityName } from '../events/catalog.js';
import { resolveEventType } from '../events/catalog.js';
import type { DeploymentEvent } from '../events/envelope.js';
import type { ShieldEventsTable } from './store/schema.js';

/**
 * An event as Shield logged it and as the API shows it: the envelope, where it was read from, and
 * the payload in the proto3 JSON mapping (lowerCamelCase fields, enum names, defaults left out).
 */
export interface LoggedEvent {
  /** Position in Shield's event log; the `id:` of SSE messages. */
  seq: number;
  /** Event id (UUID). */
  id: string;
  type: string;
  source: string;
  /** Publication time, RFC 3339 UTC with milliseconds. */
  time: string;
  correlationId: string;
  causationId: string;
  /** Empty for events that belong to no deployment (`alert:raised`). */
  deploymentId: string;
  priority: PriorityName;
  /** Stream key and entry id it was logged from. */
  stream: string;
  entryId: string;
  data: JsonObject;
}

/** Where an event was read from. */
export interface EventOrigin {
  stream: string;
  entryId: string;
}

/** The row that logs an event. */
export function eventRow(
  event: DeploymentEvent,
  origin: EventOrigin,
  loggedAt: number,
): Insertable<ShieldEventsTable> {
  const spec = resolveEventType(event.type);
  return {
    event_id: event.id,
    type: event.type,
    deployment_id: event.deploymentId,
    correlation_id: event.correlationId,
    causation_id: event.causationId,
    priority: event.priority,
    source: event.source,
    time: event.time.getTime(),
    stream: origin.stream,
    entry_id: origin.entryId,
    data: JSON.stringify(toJson(spec.schema, event.data as MessageShape<DescMessage>)),
    logged_at: loggedAt,
  };
}

export function loggedEventOf(row: Selectable<ShieldEventsTable>): LoggedEvent {
  return {
    seq: Number(row.seq),
    id: row.event_id,
    type: row.type,
    source: row.source,
    time: new Date(Number(row.time)).toISOString(),
    correlationId: row.correlation_id,
    causationId: row.causation_id,
    deploymentId: row.deployment_id,
    priority: row.priority as PriorityName,
    stream: row.stream,
    entryId: row.entry_id,
    data: JSON.parse(row.data) as JsonObject,
  };
}

/**
 * The typed payload of a logged event (the protobuf message of its type). Fields a newer schema
 * added are ignored, so an old build can still read a newer log.
 */
export function payloadOf(event: Pick<LoggedEvent, 'type' | 'data'>): MessageShape<DescMessage> {
  const spec = resolveEventType(event.type);
  return fromJson(spec.schema, event.data, { ignoreUnknownFields: true });
}
