import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { UnknownEventTypeError } from '../errors/index.js';
import * as pb from './gen/materi/events/v1/deployment_events_pb.js';
import { STAGE_NAME_PATTERN } from './streams.js';

/** Handling priority as written in the `priority` field of a stream entry. */
export type PriorityName = 'LOW' | 'NORMAL' | 'HIGH' | 'CRITICAL';

export const PRIORITY_RANK: Record<PriorityName, number> = { LOW: 0, NORMAL: 1, HIGH: 2, CRITICAL: 3 };

/** The payload type of each fixed event type. */
export interface FixedEventDataMap {
  'deployment:started': pb.DeploymentStartedEvent;
  'deployment:completed': pb.DeploymentCompletedEvent;
  'deployment:failed': pb.DeploymentFailedEvent;
  'validation:started': pb.ValidationStartedEvent;
  'validation:completed': pb.ValidationCompletedEvent;
  'dependency:check:started': pb.DependencyCheckStartedEvent;
  'dependency:check:completed': pb.DependencyCheckCompletedEvent;
  'health:check:started': pb.HealthCheckStartedEvent;
  'health:check:completed': pb.HealthCheckCompletedEvent;
  'rollback:initiated': pb.RollbackInitiatedEvent;
  'rollback:completed': pb.RollbackCompletedEvent;
  'notification:sent': pb.NotificationSentEvent;
  'alert:raised': pb.AlertRaisedEvent;
  'approval:requested': pb.ApprovalRequestedEvent;
  'approval:completed': pb.ApprovalCompletedEvent;
}

export type StageStartedType = `deployment:stage:${string}:started`;
export type StageCompletedType = `deployment:stage:${string}:completed`;
export type FixedEventType = keyof FixedEventDataMap;
export type EventType = FixedEventType | StageStartedType | StageCompletedType;

/** The payload type of an event type, including per-stage types. */
export type EventData<T extends string> = T extends FixedEventType
  ? FixedEventDataMap[T]
  : T extends StageStartedType
    ? pb.DeploymentStageStartedEvent
    : T extends StageCompletedType
      ? pb.DeploymentStageCompletedEvent
      : MessageShape<DescMessage>;

/** What the catalog knows about one event type. */
export interface EventSpec {
  /** The type string, e.g. `deployment:stage:vercel:started`. */
  readonly type: string;
  /** The protobuf message of the payload. */
  readonly schema: DescMessage;
  /** Priority used when the publisher is not told otherwise. */
  readonly defaultPriority: PriorityName;
  /** The stage, for per-stage types. */
  readonly stage?: string;
  /**
   * Payload fields (TypeScript names, the same as their proto3 JSON names) an event of this type
   * must carry to mean anything: proto3 has no required fields, so an empty string, a zero enum
   * or an empty list counts as missing. `materi events publish` refuses a payload without them;
   * the publisher and the decoder do not check them (consumers tolerate partial payloads).
   */
  readonly required: readonly string[];
}

const FIXED: Record<FixedEventType, Omit<EventSpec, 'type' | 'stage'>> = {
  'deployment:started': {
    schema: pb.DeploymentStartedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId', 'version', 'environment'],
  },
  'deployment:completed': {
    schema: pb.DeploymentCompletedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId', 'status'],
  },
  'deployment:failed': {
    schema: pb.DeploymentFailedEventSchema,
    defaultPriority: 'CRITICAL',
    required: ['deploymentId', 'reason'],
  },
  'validation:started': {
    schema: pb.ValidationStartedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId'],
  },
  'validation:completed': {
    schema: pb.ValidationCompletedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId'],
  },
  'dependency:check:started': {
    schema: pb.DependencyCheckStartedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId'],
  },
  'dependency:check:completed': {
    schema: pb.DependencyCheckCompletedEventSchema,
    defaultPriority: 'NORMAL',
    required: ['deploymentId'],
  },
  'health:check:started': {
    schema: pb.HealthCheckStartedEventSchema,
    defaultPriority: 'HIGH',
    required: ['deploymentId'],
  },
  'health:check:completed': {
    schema: pb.HealthCheckCompletedEventSchema,
    defaultPriority: 'HIGH',
    required: ['deploymentId'],
  },
  'rollback:initiated': {
    schema: pb.RollbackInitiatedEventSchema,
    defaultPriority: 'CRITICAL',
    required: ['deploymentId'],
  },
  'rollback:completed': {
    schema: pb.RollbackCompletedEventSchema,
    defaultPriority: 'CRITICAL',
    required: ['deploymentId', 'status'],
  },
  // deploymentId stays optional: an alert belongs to no deployment.
  'notification:sent': {
    schema: pb.NotificationSentEventSchema,
    defaultPriority: 'LOW',
    required: ['channel', 'notifiedEventId', 'notifiedEventType', 'outcome'],
  },
  'alert:raised': {
    schema: pb.AlertRaisedEventSchema,
    defaultPriority: 'CRITICAL',
    required: ['alert', 'severity'],
  },
  'approval:requested': {
    schema: pb.ApprovalRequestedEventSchema,
    defaultPriority: 'HIGH',
    required: ['deploymentId', 'gate'],
  },
  'approval:completed': {
    schema: pb.ApprovalCompletedEventSchema,
    defaultPriority: 'HIGH',
    required: ['deploymentId', 'gate', 'outcome'],
  },
};

const STAGE_REQUIRED = {
  started: ['deploymentId', 'stage'],
  completed: ['deploymentId', 'stage', 'status'],
} as const;

/** The fixed event types, in the order of the lifecycle. */
export const FIXED_EVENT_TYPES = Object.keys(FIXED) as FixedEventType[];

const STAGE_TYPE = /^deployment:stage:([^:]+):(started|completed)$/;

/** The event type of a stage starting or completing. */
export function stageEventType(stage: string, phase: 'started'): StageStartedType;
export function stageEventType(stage: string, phase: 'completed'): StageCompletedType;
export function stageEventType(stage: string, phase: 'started' | 'completed'): string {
  if (!STAGE_NAME_PATTERN.test(stage)) {
    throw new UnknownEventTypeError(`deployment:stage:${stage}:${phase}`);
  }
  return `deployment:stage:${stage}:${phase}`;
}

/**
 * Looks up an event type (fixed or per-stage). Throws {@link UnknownEventTypeError} for anything
 * else, including stage names outside {@link STAGE_NAME_PATTERN}.
 */
export function resolveEventType(type: string): EventSpec {
  let spec = resolved.get(type);
  if (!spec) {
    spec = lookUpEventType(type);
    // Bounded: stage names come from plans, but a stream entry may carry anything.
    if (resolved.size < 10_000) resolved.set(type, spec);
  }
  return spec;
}

/** Specs of the types looked up so far: publishing and decoding look one up per event. */
const resolved = new Map<string, EventSpec>();

function lookUpEventType(type: string): EventSpec {
  const fixed = FIXED[type as FixedEventType];
  if (fixed) return { type, ...fixed };
  const stage = STAGE_TYPE.exec(type);
  if (stage && STAGE_NAME_PATTERN.test(stage[1]!)) {
    const started = stage[2] === 'started';
    return {
      type,
      schema: started ? pb.DeploymentStageStartedEventSchema : pb.DeploymentStageCompletedEventSchema,
      defaultPriority: 'HIGH',
      stage: stage[1]!,
      required: started ? STAGE_REQUIRED.started : STAGE_REQUIRED.completed,
    };
  }
  throw new UnknownEventTypeError(type);
}

export function isKnownEventType(type: string): boolean {
  try {
    resolveEventType(type);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether an event type or pattern names something that can be published: a known type, `**`, or
 * a pattern whose `*` segments match at least one known type, e.g. `rollback:*` or
 * `deployment:stage:*:completed` (any stage name allowed in stream keys). False for
 * `deployment:exploded` or `deploy:*`, which would select nothing forever.
 */
export function isKnownEventPattern(pattern: string): boolean {
  if (pattern === '**') return true;
  if (!pattern.includes('*')) return isKnownEventType(pattern);
  if (FIXED_EVENT_TYPES.some((type) => matchesEventPattern(pattern, type))) return true;
  const segments = pattern.split(':');
  if (segments.length !== 4) return false;
  const [kind, stage, name, phase] = segments as [string, string, string, string];
  return (
    (kind === '*' || kind === 'deployment') &&
    (stage === '*' || stage === 'stage') &&
    (name === '*' || STAGE_NAME_PATTERN.test(name)) &&
    (phase === '*' || phase === 'started' || phase === 'completed')
  );
}

/**
 * Whether an event type matches a subscription pattern. A pattern is an exact type or uses `*` for
 * one segment, e.g. `deployment:stage:*:completed`, and `**` alone matches every type.
 */
export function matchesEventPattern(pattern: string, type: string): boolean {
  if (pattern === '**' || pattern === type) return true;
  if (!pattern.includes('*')) return false;
  const p = pattern.split(':');
  const t = type.split(':');
  return p.length === t.length && p.every((segment, i) => segment === '*' || segment === t[i]);
}
