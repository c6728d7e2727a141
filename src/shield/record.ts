import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import * as pb from '../events/gen/materi/events/v1/deployment_events_pb.js';
import { ORCHESTRATOR_SOURCE } from '../events/sources.js';
import { type LoggedEvent, payloadOf } from './event-log.js';

/**
 * The deployment record (`UnifiedDeployment`) and how it is computed: a pure function of the set
 * of a deployment's events. Events are sorted by time, then by a fixed lifecycle order of their
 * types, then by id, and folded; so the same events give the same record whatever order and how
 * many times they arrived. Only events Shield trusts are folded (see {@link IgnoredEvent}); the
 * others stay in the log and are listed in the record.
 *
 * @module
 */

/** Status of a deployment (the `DeploymentStatus` enum without its prefix). */
export type DeploymentStatusName =
  | 'PENDING'
  | 'RUNNING'
  | 'SUCCESS'
  | 'FAILURE'
  | 'ROLLED_BACK'
  | 'CANCELLED';

/** Status of a stage; `SKIPPED` for a planned stage that never ran in a finished deployment. */
export type StageStatusName = DeploymentStatusName | 'SKIPPED';

/** Where a deployment is: `pending` before any gate or stage ran, `done` once it is final. */
export type DeploymentPhase =
  | 'pending'
  | 'validation'
  | 'dependencies'
  | `stage:${string}`
  | 'health'
  | 'approval'
  | 'rollback'
  | 'done';

/** The gates a deployment waits on, and the consumer group that answers each. */
export const GATE_GROUPS = {
  validation: 'printery-validator',
  dependency: 'printery-dependency-checker',
  health: 'printery-health-monitor',
} as const;

export type GateName = keyof typeof GATE_GROUPS;

/** A gate requested and not answered yet. */
export interface BlockedOn {
  gate: GateName;
  /** Consumer group expected to answer. */
  group: string;
  /** When the gate was requested. */
  since: string;
  /** Id of the `*:started` event waiting for its result. */
  eventId: string;
}

export interface ArtifactRecord {
  name: string;
  kind: string;
  value: string;
}

export interface StageRecord {
  stage: string;
  description: string;
  provider: string;
  services: string[];
  status: StageStatusName;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  artifacts: ArtifactRecord[];
  /** Error message when the stage failed. */
  error: string | null;
}

/** Timing and execution facts every gate result has. */
export interface GateRecord {
  /** When the gate was last requested (`*:started`). */
  requestedAt: string | null;
  /** When its result arrived (`*:completed`). */
  completedAt: string | null;
  deadlineSeconds: number | null;
  durationMs: number | null;
  /** Whether the checks could run: `SUCCEEDED`, `ERRORED`, `TIMED_OUT`. */
  executionStatus: string | null;
  message: string | null;
}

export interface ValidationCheckRecord {
  name: string;
  kind: string;
  /** `PASSED`, `FAILED`, `WARNING`, `SKIPPED`. */
  status: string;
  message: string;
  durationMs: number;
}

export interface ValidationRecord extends GateRecord {
  /** `PASSED`, `FAILED`, `WARNINGS`; null while waiting. */
  result: string | null;
  checks: ValidationCheckRecord[];
}

export interface DependencyRecord {
  name: string;
  type: string;
  service: string;
  healthy: boolean;
  critical: boolean;
  latencyMs: number;
  attempts: number;
  message: string;
}

export interface DependenciesRecord extends GateRecord {
  /** `ALL_HEALTHY`, `SOME_DEGRADED`, `ALL_UNHEALTHY`; null while waiting. */
  result: string | null;
  dependencies: DependencyRecord[];
}

export interface HealthSampleRecord {
  /** Milliseconds since the window started. */
  offsetMs: number;
  latencyMs: number;
  ok: boolean;
  endpoint: string;
}

export interface ServiceHealthRecord {
  service: string;
  /** `HEALTHY`, `DEGRADED`, `UNHEALTHY`, `INCONCLUSIVE`. */
  status: string;
  responseTimeP50Ms: number;
  responseTimeP95Ms: number;
  responseTimeMaxMs: number;
  /** Share of failed probes, 0..1. */
  errorRate: number;
  sampleCount: number;
  metricsFlowing: boolean;
  message: string;
  /** The probes of the window, for charts. */
  samples: HealthSampleRecord[];
}

export interface HealthRecord extends GateRecord {
  /** `POST_DEPLOY` (the health gate) or `BAKE`. */
  purpose: 'POST_DEPLOY' | 'BAKE';
  /** Services the monitor was asked to watch. */
  requestedServices: string[];
  /** Overall verdict; null while waiting. */
  status: string | null;
  reason: string | null;
  rollbackRecommended: boolean | null;
  services: ServiceHealthRecord[];
}

export interface RollbackRecord {
  /** `RUNNING` until `rollback:completed`, then its status (`SUCCESS` or `FAILURE`). */
  status: DeploymentStatusName;
  initiatedAt: string | null;
  reason: string;
  /** Version the rollback restores. */
  targetVersion: string;
  /** Stages rolled back, in rollback order. */
  stages: string[];
  completedAt: string | null;
  restoredVersion: string | null;
  durationMs: number | null;
  rolledBackServices: string[];
  error: string | null;
}

/**
 * A wait for a person (`approval:requested`) and how it ended (`approval:completed`): an approval
 * the plan asks for before an environment or a stage, or a pause after an inconclusive health verdict.
 */
export interface ApprovalRecord {
  /** Id of the `approval:requested` event (empty when only its completion is logged). */
  eventId: string;
  /** `environment`, `stage:<name>` or `health`. */
  gate: string;
  /** Role allowed to answer; empty means any operator. */
  approvers: string;
  reason: string;
  requestedAt: string | null;
  /** When the wait ends as `EXPIRED` if nobody answers. */
  deadline: string | null;
  /** Where a person answers (the deployment's dashboard page), when the orchestrator knows it. */
  url: string;
  /** `APPROVED`, `REJECTED`, `EXPIRED`; null while it waits (or when the deployment ended otherwise). */
  outcome: 'APPROVED' | 'REJECTED' | 'EXPIRED' | null;
  /** Who answered; null while it waits or when it expired. */
  by: string | null;
  comment: string | null;
  answeredAt: string | null;
}

export interface NotificationRecord {
  eventId: string;
  at: string;
  channel: string;
  target: string;
  notifiedEventId: string;
  notifiedEventType: string;
  /** `SENT`, `FAILED`, `SUPPRESSED`. */
  outcome: string;
  message: string;
}

export interface FailureRecord {
  at: string;
  reason: string;
  /** `validation`, `dependency`, `stage`, `health`, `deadline`, `cancel`. */
  gate: string;
  /** Empty when a gate failed. */
  stage: string;
  details: string;
}

export interface DeploymentMetricsRecord {
  totalDurationMs: number;
  validationDurationMs: number;
  dependencyCheckDurationMs: number;
  stagesDurationMs: number;
  healthCheckDurationMs: number;
  stagesTotal: number;
  stagesSucceeded: number;
  servicesDeployed: number;
  eventsPublished: number;
}

/**
 * An event of the deployment that is in the log but does not change its record:
 * - `source`: a type only the orchestrator publishes (the lifecycle, gate requests, stages,
 *   rollbacks, approvals), from another source than {@link ORCHESTRATOR_SOURCE};
 * - `no-request`: a gate result whose `causation_id` names no gate request of the orchestrator
 *   (the orchestrator ignores such results too);
 * - `answered`: a second result to a request already answered (the orchestrator keeps the first).
 */
export interface IgnoredEvent {
  eventId: string;
  type: string;
  source: string;
  code: 'source' | 'no-request' | 'answered';
  reason: string;
}

/** Everything Shield knows about one deployment. Times are RFC 3339 UTC strings. */
export interface UnifiedDeployment {
  id: string;
  project: string;
  version: string;
  environment: string;
  strategy: string;
  services: string[];
  /** Stage names of the plan in dependency order (from `deployment:started`). */
  plannedStages: string[];
  status: DeploymentStatusName;
  phase: DeploymentPhase;
  /** The gate the deployment waits on, or null. */
  blockedOn: BlockedOn | null;
  stages: StageRecord[];
  validation: ValidationRecord | null;
  dependencies: DependenciesRecord | null;
  /** The health gate after the stages. */
  health: HealthRecord | null;
  /** The bake-period health check after a successful deployment, if any. */
  bake: HealthRecord | null;
  rollback: RollbackRecord | null;
  /** Every wait for a person, in request order. */
  approvals: ApprovalRecord[];
  /** The approval it waits for now (unanswered, while the deployment is active), or null. */
  waitingFor: ApprovalRecord | null;
  notifications: NotificationRecord[];
  /** Why it failed (`deployment:failed`), or null. */
  failure: FailureRecord | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  correlationId: string;
  triggeredBy: string;
  previousVersion: string;
  /** `deploy`, or `rollback` for a rollback of the environment to an earlier release. */
  kind: 'deploy' | 'rollback';
  /** Started inside a freeze on purpose (`--override-freeze`): the window, the reason, who. */
  freezeOverride: { window: string; reason: string; by: string } | null;
  metrics: DeploymentMetricsRecord | null;
  /** Events of this deployment in the log (each event once), ignored ones included. */
  eventCount: number;
  /** Events in the log that did not change the record, and why. */
  ignoredEvents: IgnoredEvent[];
  /** Time of its latest event that changed the record. */
  lastEventAt: string;
}

/**
 * Lifecycle order of event types: it breaks ties between events published in the same
 * millisecond, so a stage's completion sorts after its start and `deployment:completed` last.
 */
const TYPE_RANK: Record<string, number> = {
  'deployment:started': 0,
  'validation:started': 1,
  'validation:completed': 2,
  'dependency:check:started': 3,
  'dependency:check:completed': 4,
  'stage:started': 5,
  'stage:completed': 6,
  'health:check:started': 7,
  'health:check:completed': 8,
  'approval:requested': 8.3,
  'approval:completed': 8.6,
  'deployment:failed': 9,
  'rollback:initiated': 10,
  'rollback:completed': 11,
  'deployment:completed': 12,
  'notification:sent': 13,
  'alert:raised': 14,
};

const STAGE_TYPE = /^deployment:stage:([^:]+):(started|completed)$/;

function typeRank(type: string): number {
  const stage = STAGE_TYPE.exec(type);
  return TYPE_RANK[stage ? `stage:${stage[2]}` : type] ?? 99;
}

/** The order events are folded in: time, then lifecycle order, then id. */
export function compareEvents(a: Pick<LoggedEvent, 'time' | 'type' | 'id'>, b: typeof a): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  const rank = typeRank(a.type) - typeRank(b.type);
  if (rank !== 0) return rank;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The types only the orchestrator publishes, besides the per-stage ones. */
const ORCHESTRATOR_TYPES = new Set([
  'deployment:started',
  'deployment:completed',
  'deployment:failed',
  'validation:started',
  'dependency:check:started',
  'health:check:started',
  'rollback:initiated',
  'rollback:completed',
  'approval:requested',
  'approval:completed',
]);

/** Each gate result type and the request type it answers. */
const REQUEST_OF: Record<string, string> = {
  'validation:completed': 'validation:started',
  'dependency:check:completed': 'dependency:check:started',
  'health:check:completed': 'health:check:started',
};

/** Whether an event is a gate request of the orchestrator (results name it as their cause). */
function isGateRequest(event: Pick<LoggedEvent, 'type' | 'source'>): boolean {
  return event.source === ORCHESTRATOR_SOURCE && REQUEST_TYPES.has(event.type);
}

const REQUEST_TYPES = new Set(Object.values(REQUEST_OF));

/**
 * Why an event may not change its deployment's record, or undefined when it may: `requests` are
 * the orchestrator's gate requests (id → type) and `answeredBy` the first result folded for each
 * (the event is recorded there when it is that first result).
 */
function distrust(
  event: LoggedEvent,
  requests: ReadonlyMap<string, string>,
  answeredBy: Map<string, string>,
): IgnoredEvent | undefined {
  const ignore = (code: IgnoredEvent['code'], reason: string): IgnoredEvent => ({
    eventId: event.id,
    type: event.type,
    source: event.source,
    code,
    reason,
  });
  if (ORCHESTRATOR_TYPES.has(event.type) || STAGE_TYPE.test(event.type)) {
    if (event.source === ORCHESTRATOR_SOURCE) return undefined;
    return ignore(
      'source',
      `${event.type} from "${event.source}": only the orchestrator (${ORCHESTRATOR_SOURCE}) moves a deployment`,
    );
  }
  const requestType = REQUEST_OF[event.type];
  if (requestType === undefined) return undefined;
  if (requests.get(event.causationId) !== requestType) {
    return ignore('no-request', `${event.type} answers no ${requestType} of the orchestrator`);
  }
  const first = answeredBy.get(event.causationId);
  if (first !== undefined) {
    return ignore('answered', `${requestType} ${event.causationId} was answered first by ${first}`);
  }
  answeredBy.set(event.causationId, event.id);
  return undefined;
}

/**
 * Splits a deployment's events (in fold order) into those that may change its record and those
 * that may not. The lifecycle counts only from the orchestrator. A gate result counts when it
 * answers a gate request of the orchestrator, the first one to answer it — whoever sends it, as
 * the orchestrator accepts results from any checker that answers its request. Notifications
 * and other types count from anyone: they do not move the deployment.
 */
export function partitionByTrust(events: readonly LoggedEvent[]): {
  trusted: LoggedEvent[];
  ignored: IgnoredEvent[];
} {
  const requests = new Map<string, string>();
  for (const event of events) if (isGateRequest(event)) requests.set(event.id, event.type);
  const answeredBy = new Map<string, string>();
  const trusted: LoggedEvent[] = [];
  const ignored: IgnoredEvent[] = [];
  for (const event of events) {
    const verdict = distrust(event, requests, answeredBy);
    if (verdict) ignored.push(verdict);
    else trusted.push(event);
  }
  return { trusted, ignored };
}

function statusName(status: pb.DeploymentStatus): DeploymentStatusName | undefined {
  const name = pb.DeploymentStatus[status];
  return name === undefined || name === 'UNSPECIFIED' ? undefined : (name as DeploymentStatusName);
}

function enumName<E extends Record<number, string>>(values: E, value: number): string {
  return values[value] ?? 'UNSPECIFIED';
}

function iso(timestamp: Timestamp | undefined): string | null {
  return timestamp ? timestampDate(timestamp).toISOString() : null;
}

function positive(value: number): number | null {
  return value > 0 ? value : null;
}

function nonEmpty(value: string): string | null {
  return value === '' ? null : value;
}

function firstNonEmpty(...values: (string | undefined)[]): string {
  return values.find((v) => v !== undefined && v !== '') ?? '';
}

function durationBetween(from: string | null, to: string | null): number | null {
  if (from === null || to === null) return null;
  return Math.max(0, Date.parse(to) - Date.parse(from));
}

/** An event with its typed payload. */
interface Folded<T> {
  event: LoggedEvent;
  data: T;
}

/** A request event and the result events of one gate. */
interface GateEvents<Req, Res> {
  requests: Folded<Req>[];
  results: Folded<Res>[];
}

/** The requests of a gate still waiting for their result (a result names its request as cause). */
function openRequests<Req, Res>(gate: GateEvents<Req, Res>): Folded<Req>[] {
  const answered = new Set(gate.results.map((r) => r.event.causationId));
  return gate.requests.filter((r) => !answered.has(r.event.id));
}

function gateTiming<Req extends { deadlineSeconds: number }>(
  request: Folded<Req> | undefined,
  result: Folded<{ durationMs: number; executionStatus: pb.ExecutionStatus; message?: string }> | undefined,
): GateRecord {
  return {
    requestedAt: request?.event.time ?? null,
    completedAt: result?.event.time ?? null,
    deadlineSeconds: request ? positive(request.data.deadlineSeconds) : null,
    durationMs: result ? positive(result.data.durationMs) : null,
    executionStatus: result ? enumName(pb.ExecutionStatus, result.data.executionStatus) : null,
    message: result ? nonEmpty(result.data.message ?? '') : null,
  };
}

function healthRecord(
  purpose: 'POST_DEPLOY' | 'BAKE',
  gate: GateEvents<pb.HealthCheckStartedEvent, pb.HealthCheckCompletedEvent>,
): HealthRecord | null {
  const request = gate.requests.at(-1);
  const result = gate.results.at(-1);
  if (!request && !result) return null;
  return {
    ...gateTiming(request, result),
    purpose,
    requestedServices: request ? [...request.data.services] : [],
    status: result ? enumName(pb.HealthStatus, result.data.status) : null,
    reason: result ? nonEmpty(result.data.reason) : null,
    rollbackRecommended: result ? result.data.rollbackRecommended : null,
    services: (result?.data.services ?? []).map((s) => ({
      service: s.service,
      status: enumName(pb.HealthStatus, s.status),
      responseTimeP50Ms: s.responseTimeP50Ms,
      responseTimeP95Ms: s.responseTimeP95Ms,
      responseTimeMaxMs: s.responseTimeMaxMs,
      errorRate: s.errorRate,
      sampleCount: s.sampleCount,
      metricsFlowing: s.metricsFlowing,
      message: s.message,
      samples: s.samples.map((sample) => ({
        offsetMs: sample.offsetMs,
        latencyMs: sample.latencyMs,
        ok: sample.ok,
        endpoint: sample.endpoint,
      })),
    })),
  };
}

const ACTIVE: readonly DeploymentStatusName[] = ['PENDING', 'RUNNING'];

/**
 * Computes the record of a deployment from its logged events (any order, duplicates allowed).
 * Returns undefined when no event may change it (none, or only ignored ones).
 */
export function buildDeploymentRecord(
  deploymentId: string,
  loggedEvents: readonly LoggedEvent[],
): UnifiedDeployment | undefined {
  return foldDeployment(deploymentId, loggedEvents).record;
}

/**
 * The facts of a deployment's events folded so far, from which {@link recordOf} computes its
 * record: what {@link foldStep} keeps of each event (the latest of a kind, or every one of a kind
 * the record lists), the trust of gate results, and where the fold is. Its size is the size of
 * the record; {@link saveFoldState} and {@link loadFoldState} store it as JSON.
 */
export interface FoldState {
  /** Fold key of the latest event folded (ignored ones included): the next must sort after it. */
  last: Pick<LoggedEvent, 'time' | 'type' | 'id'> | undefined;
  /** Events folded (each once), ignored ones included. */
  eventCount: number;
  ignored: IgnoredEvent[];
  /** The orchestrator's gate requests folded: id → type. */
  requests: Map<string, string>;
  /** Request id → the first result folded for it. */
  answeredBy: Map<string, string>;
  /** Causation ids of results ignored as `no-request`: their request, folded later, trusts them. */
  orphans: Set<string>;
  /** Earliest and latest trusted events folded (undefined while none). */
  first: Pick<LoggedEvent, 'time' | 'correlationId'> | undefined;
  lastAt: string | undefined;
  started?: Folded<pb.DeploymentStartedEvent>;
  completed?: Folded<pb.DeploymentCompletedEvent>;
  failed?: Folded<pb.DeploymentFailedEvent>;
  rollbackStart?: Folded<pb.RollbackInitiatedEvent>;
  rollbackEnd?: Folded<pb.RollbackCompletedEvent>;
  validation: GateEvents<pb.ValidationStartedEvent, pb.ValidationCompletedEvent>;
  dependency: GateEvents<pb.DependencyCheckStartedEvent, pb.DependencyCheckCompletedEvent>;
  health: GateEvents<pb.HealthCheckStartedEvent, pb.HealthCheckCompletedEvent>;
  bake: GateEvents<pb.HealthCheckStartedEvent, pb.HealthCheckCompletedEvent>;
  stageStarts: Map<string, Folded<pb.DeploymentStageStartedEvent>>;
  stageEnds: Map<string, Folded<pb.DeploymentStageCompletedEvent>>;
  approvalRequests: Folded<pb.ApprovalRequestedEvent>[];
  approvalAnswers: Folded<pb.ApprovalCompletedEvent>[];
  notifications: NotificationRecord[];
  /** The phase of the latest event that moved the deployment forward. */
  progress: DeploymentPhase | undefined;
}

/** The state of a fold before any event. */
export function emptyFoldState(): FoldState {
  return {
    last: undefined,
    eventCount: 0,
    ignored: [],
    requests: new Map(),
    answeredBy: new Map(),
    orphans: new Set(),
    first: undefined,
    lastAt: undefined,
    validation: { requests: [], results: [] },
    dependency: { requests: [], results: [] },
    health: { requests: [], results: [] },
    bake: { requests: [], results: [] },
    stageStarts: new Map(),
    stageEnds: new Map(),
    approvalRequests: [],
    approvalAnswers: [],
    notifications: [],
    progress: undefined,
  };
}

/**
 * Whether {@link foldStep} may fold `event` next: it sorts after every event folded, and it is
 * not the request of a result already ignored for lack of it (that result would count now). If
 * not, the record is the fold of all the events again ({@link foldDeployment}).
 */
export function foldsInOrder(state: FoldState, event: LoggedEvent): boolean {
  if (state.last !== undefined && compareEvents(state.last, event) >= 0) return false;
  return !(isGateRequest(event) && state.orphans.has(event.id));
}

/**
 * Folds one more event into `state`, in place. The event must sort after every event folded
 * (see {@link foldsInOrder}) and not have been folded before; {@link foldDeployment} folds a
 * deployment's events with it, and the live projection folds each new event with it.
 */
export function foldStep(state: FoldState, event: LoggedEvent): void {
  state.last = { time: event.time, type: event.type, id: event.id };
  state.eventCount++;
  if (isGateRequest(event)) state.requests.set(event.id, event.type);
  const verdict = distrust(event, state.requests, state.answeredBy);
  if (verdict) {
    state.ignored.push(verdict);
    if (verdict.code === 'no-request') state.orphans.add(event.causationId);
    return;
  }
  state.first ??= { time: event.time, correlationId: event.correlationId };
  state.lastAt = event.time;
  const data = payloadOf(event);
  const stage = STAGE_TYPE.exec(event.type);
  if (stage) {
    const name = stage[1]!;
    if (stage[2] === 'started') {
      state.stageStarts.set(name, { event, data: data as pb.DeploymentStageStartedEvent });
    } else {
      state.stageEnds.set(name, { event, data: data as pb.DeploymentStageCompletedEvent });
    }
    state.progress = `stage:${name}`;
    return;
  }
  switch (event.type) {
    case 'deployment:started':
      state.started ??= { event, data: data as pb.DeploymentStartedEvent };
      break;
    case 'deployment:completed':
      state.completed = { event, data: data as pb.DeploymentCompletedEvent };
      break;
    case 'deployment:failed':
      state.failed = { event, data: data as pb.DeploymentFailedEvent };
      break;
    case 'rollback:initiated':
      state.rollbackStart = { event, data: data as pb.RollbackInitiatedEvent };
      break;
    case 'rollback:completed':
      state.rollbackEnd = { event, data: data as pb.RollbackCompletedEvent };
      break;
    case 'validation:started':
      state.validation.requests.push({ event, data: data as pb.ValidationStartedEvent });
      state.progress = 'validation';
      break;
    case 'validation:completed':
      state.validation.results.push({ event, data: data as pb.ValidationCompletedEvent });
      state.progress = 'validation';
      break;
    case 'dependency:check:started':
      state.dependency.requests.push({ event, data: data as pb.DependencyCheckStartedEvent });
      state.progress = 'dependencies';
      break;
    case 'dependency:check:completed':
      state.dependency.results.push({ event, data: data as pb.DependencyCheckCompletedEvent });
      state.progress = 'dependencies';
      break;
    case 'health:check:started': {
      const request = data as pb.HealthCheckStartedEvent;
      const gate = request.purpose === pb.HealthCheckPurpose.BAKE ? state.bake : state.health;
      gate.requests.push({ event, data: request });
      state.progress = 'health';
      break;
    }
    case 'health:check:completed': {
      const result = data as pb.HealthCheckCompletedEvent;
      const gate = result.purpose === pb.HealthCheckPurpose.BAKE ? state.bake : state.health;
      gate.results.push({ event, data: result });
      state.progress = 'health';
      break;
    }
    case 'approval:requested':
      state.approvalRequests.push({ event, data: data as pb.ApprovalRequestedEvent });
      state.progress = 'approval';
      break;
    case 'approval:completed':
      state.approvalAnswers.push({ event, data: data as pb.ApprovalCompletedEvent });
      break;
    case 'notification:sent': {
      const sent = data as pb.NotificationSentEvent;
      state.notifications.push({
        eventId: event.id,
        at: event.time,
        channel: sent.channel,
        target: sent.target,
        notifiedEventId: sent.notifiedEventId,
        notifiedEventType: sent.notifiedEventType,
        outcome: enumName(pb.NotificationOutcome, sent.outcome),
        message: sent.message,
      });
      break;
    }
  }
}

/**
 * The record of a deployment (see {@link buildDeploymentRecord}), the events it ignored, and the
 * fold state the live projection continues from. The events are folded in fold order with
 * {@link foldStep}, the gate requests known up front (a result published before its request —
 * clocks of two processes — still counts).
 */
export function foldDeployment(
  deploymentId: string,
  loggedEvents: readonly LoggedEvent[],
): { record?: UnifiedDeployment; ignored: IgnoredEvent[]; state: FoldState } {
  const unique = new Map<string, LoggedEvent>();
  for (const event of loggedEvents) if (!unique.has(event.id)) unique.set(event.id, event);
  const all = [...unique.values()].sort(compareEvents);
  const state = emptyFoldState();
  for (const event of all) if (isGateRequest(event)) state.requests.set(event.id, event.type);
  for (const event of all) foldStep(state, event);
  return { record: recordOf(deploymentId, state), ignored: [...state.ignored], state };
}

/** Version of the JSON {@link saveFoldState} writes; {@link loadFoldState} refuses any other. */
const FOLD_STATE_VERSION = 1;

/**
 * An event as a fold state keeps it: what the record reads of the envelope, and the payload
 * without its deployment id; the correlation id only when it is not the deployment's.
 */
type SavedEvent = [
  id: string,
  type: string,
  time: string,
  causationId: string,
  data: LoggedEvent['data'],
  correlationId?: string,
];

function eventSaver(correlationId: string | undefined) {
  return ({ event }: Folded<unknown>): SavedEvent => {
    const { deploymentId: _, ...data } = event.data;
    const saved: SavedEvent = [event.id, event.type, event.time, event.causationId, data];
    if (event.correlationId !== correlationId) saved.push(event.correlationId);
    return saved;
  };
}

function eventLoader(deploymentCorrelationId: string) {
  return <T>([id, type, time, causationId, data, correlationId]: SavedEvent): Folded<T> => {
    const event: LoggedEvent = {
      seq: 0,
      id,
      type,
      source: '',
      time,
      correlationId: correlationId ?? deploymentCorrelationId,
      causationId,
      deploymentId: '',
      priority: 'normal' as LoggedEvent['priority'],
      stream: '',
      entryId: '',
      data,
    };
    return { event, data: payloadOf(event) as T };
  };
}

/** A fold state as JSON-compatible data (its version included), to store beside the record. */
export function saveFoldState(state: FoldState): unknown {
  const saveEvent = eventSaver(state.first?.correlationId);
  const gate = (g: GateEvents<unknown, unknown>) => [g.requests.map(saveEvent), g.results.map(saveEvent)];
  const one = (f: Folded<unknown> | undefined) => (f ? saveEvent(f) : null);
  return {
    v: FOLD_STATE_VERSION,
    last: state.last ?? null,
    eventCount: state.eventCount,
    ignored: state.ignored,
    requests: [...state.requests],
    answeredBy: [...state.answeredBy],
    orphans: [...state.orphans],
    first: state.first ?? null,
    lastAt: state.lastAt ?? null,
    started: one(state.started),
    completed: one(state.completed),
    failed: one(state.failed),
    rollbackStart: one(state.rollbackStart),
    rollbackEnd: one(state.rollbackEnd),
    validation: gate(state.validation),
    dependency: gate(state.dependency),
    health: gate(state.health),
    bake: gate(state.bake),
    stageStarts: [...state.stageStarts.values()].map(saveEvent),
    stageEnds: [...state.stageEnds.values()].map(saveEvent),
    approvalRequests: state.approvalRequests.map(saveEvent),
    approvalAnswers: state.approvalAnswers.map(saveEvent),
    notifications: state.notifications,
    progress: state.progress ?? null,
  };
}

/**
 * The fold state {@link saveFoldState} saved, or undefined when `saved` is not one of this
 * version (older, newer or damaged): the caller folds all the events again then.
 */
export function loadFoldState(saved: unknown): FoldState | undefined {
  // biome-ignore lint/suspicious/noExplicitAny: checked by version, and any damage throws below
  const s = saved as any;
  if (typeof s !== 'object' || s === null || s.v !== FOLD_STATE_VERSION) return undefined;
  try {
    const loadEvent = eventLoader(s.first?.correlationId ?? '');
    const gate = <Req, Res>([requests, results]: [SavedEvent[], SavedEvent[]]): GateEvents<Req, Res> => ({
      requests: requests.map((e) => loadEvent<Req>(e)),
      results: results.map((e) => loadEvent<Res>(e)),
    });
    const one = <T>(e: SavedEvent | null) => (e ? loadEvent<T>(e) : undefined);
    const stages = <T extends { stage: string }>(list: SavedEvent[]) =>
      new Map(
        list.map((e) => {
          const folded = loadEvent<T>(e);
          return [STAGE_TYPE.exec(folded.event.type)![1]!, folded] as const;
        }),
      );
    return {
      last: s.last ?? undefined,
      eventCount: s.eventCount,
      ignored: s.ignored,
      requests: new Map(s.requests),
      answeredBy: new Map(s.answeredBy),
      orphans: new Set(s.orphans),
      first: s.first ?? undefined,
      lastAt: s.lastAt ?? undefined,
      started: one(s.started),
      completed: one(s.completed),
      failed: one(s.failed),
      rollbackStart: one(s.rollbackStart),
      rollbackEnd: one(s.rollbackEnd),
      validation: gate(s.validation),
      dependency: gate(s.dependency),
      health: gate(s.health),
      bake: gate(s.bake),
      stageStarts: stages(s.stageStarts),
      stageEnds: stages(s.stageEnds),
      approvalRequests: s.approvalRequests.map((e: SavedEvent) => loadEvent(e)),
      approvalAnswers: s.approvalAnswers.map((e: SavedEvent) => loadEvent(e)),
      notifications: s.notifications,
      progress: s.progress ?? undefined,
    };
  } catch {
    return undefined;
  }
}

/** The record of the events folded into `state`; undefined while none may change it. */
export function recordOf(deploymentId: string, state: FoldState): UnifiedDeployment | undefined {
  if (state.first === undefined || state.lastAt === undefined) return undefined;
  const { started, completed, failed, rollbackStart, rollbackEnd, validation, dependency, health, bake } =
    state;
  const { stageStarts, stageEnds, approvalRequests, approvalAnswers, progress } = state;

  // Status: deployment:completed is final whatever else arrived; before it, the latest facts.
  let status: DeploymentStatusName;
  const finalStatus = completed ? statusName(completed.data.status) : undefined;
  if (completed) status = finalStatus ?? (failed ? 'FAILURE' : 'SUCCESS');
  else if (rollbackEnd)
    status = rollbackEnd.data.status === pb.DeploymentStatus.SUCCESS ? 'ROLLED_BACK' : 'FAILURE';
  else if (rollbackStart) status = 'RUNNING';
  else if (failed) status = 'FAILURE';
  else if (progress !== undefined) status = 'RUNNING';
  else status = 'PENDING';
  const active = ACTIVE.includes(status);

  // Stages: planned order first, then the others by start.
  const planned = started ? [...started.data.stages] : [];
  const stageResults = new Map((completed?.data.stageResults ?? []).map((r) => [r.stage, r]));
  const names = new Set<string>([
    ...planned,
    ...(rollbackStart?.data.stagesToRollback ?? []),
    ...stageStarts.keys(),
    ...stageEnds.keys(),
    ...stageResults.keys(),
  ]);
  const stages: StageRecord[] = [...names].map((name) => {
    const start = stageStarts.get(name);
    const end = stageEnds.get(name);
    const result = stageResults.get(name);
    const startedAt = start?.event.time ?? iso(result?.startedAt);
    const finishedAt = end?.event.time ?? iso(result?.finishedAt);
    let stageStatus: StageStatusName =
      (result && statusName(result.status)) ??
      (end && statusName(end.data.status)) ??
      (start ? 'RUNNING' : active ? 'PENDING' : 'SKIPPED');
    // A stage cannot still be running once the deployment is final.
    if (stageStatus === 'RUNNING' && !active) {
      stageStatus = status === 'CANCELLED' ? 'CANCELLED' : 'FAILURE';
    }
    const services = firstList(end?.data.services, result?.services, start?.data.services);
    const artifacts = (end?.data.artifacts.length ? end.data.artifacts : (result?.artifacts ?? [])).map(
      (a) => ({ name: a.name, kind: a.kind, value: a.value }),
    );
    return {
      stage: name,
      description: start?.data.description ?? '',
      provider: start?.data.provider ?? '',
      services,
      status: stageStatus,
      startedAt,
      finishedAt,
      durationMs:
        positive(end?.data.durationMs ?? 0) ??
        positive(result?.durationMs ?? 0) ??
        durationBetween(startedAt, finishedAt),
      artifacts,
      error: nonEmpty(firstNonEmpty(end?.data.errorMessage, result?.errorMessage)),
    };
  });
  const plannedIndex = (name: string) => {
    const i = planned.indexOf(name);
    return i === -1 ? Number.MAX_SAFE_INTEGER : i;
  };
  stages.sort(
    (a, b) =>
      plannedIndex(a.stage) - plannedIndex(b.stage) ||
      (a.startedAt ?? '\uffff').localeCompare(b.startedAt ?? '\uffff') ||
      a.stage.localeCompare(b.stage),
  );

  // The gate it waits on: the latest request still open, while the deployment is active.
  let blockedOn: BlockedOn | null = null;
  if (active && !rollbackStart) {
    const candidates: { gate: GateName; request: Folded<unknown> }[] = [
      ...openRequests(validation).map((request) => ({ gate: 'validation' as const, request })),
      ...openRequests(dependency).map((request) => ({ gate: 'dependency' as const, request })),
      ...openRequests(health).map((request) => ({ gate: 'health' as const, request })),
      ...openRequests(bake).map((request) => ({ gate: 'health' as const, request })),
    ];
    candidates.sort((a, b) => compareEvents(a.request.event, b.request.event));
    const latest = candidates.at(-1);
    if (latest) {
      blockedOn = {
        gate: latest.gate,
        group: GATE_GROUPS[latest.gate],
        since: latest.request.event.time,
        eventId: latest.request.event.id,
      };
    }
  }

  const approvals = approvalRecords(approvalRequests, approvalAnswers);
  const waitingFor =
    active && !rollbackStart ? (approvals.findLast((a) => a.answeredAt === null) ?? null) : null;

  let phase: DeploymentPhase;
  const openStage = stages.filter((s) => s.status === 'RUNNING').at(-1);
  if (!active) phase = 'done';
  else if (rollbackStart) phase = 'rollback';
  else if (waitingFor) phase = 'approval';
  else if (openStage) phase = `stage:${openStage.stage}`;
  else if (blockedOn) phase = blockedOn.gate === 'dependency' ? 'dependencies' : blockedOn.gate;
  else phase = progress ?? 'pending';

  const validationRequest = validation.requests.at(-1);
  const validationResult = validation.results.at(-1);
  const dependencyRequest = dependency.requests.at(-1);
  const dependencyResult = dependency.results.at(-1);

  const startedAt = started?.event.time ?? state.first.time;
  const finishedAt = completed?.event.time ?? null;
  const metrics = completed?.data.metrics;
  const stageServices = [...new Set(stages.flatMap((s) => s.services))];

  return {
    id: deploymentId,
    project: firstNonEmpty(
      started?.data.project,
      completed?.data.project,
      failed?.data.project,
      rollbackStart?.data.project,
      rollbackEnd?.data.project,
    ),
    version: firstNonEmpty(
      started?.data.version,
      completed?.data.version,
      failed?.data.version,
      rollbackStart?.data.version,
      rollbackEnd?.data.version,
      validationRequest?.data.version,
    ),
    environment: firstNonEmpty(
      started?.data.environment,
      completed?.data.environment,
      failed?.data.environment,
      rollbackStart?.data.environment,
      rollbackEnd?.data.environment,
      validationRequest?.data.environment,
      dependencyRequest?.data.environment,
    ),
    strategy: started?.data.strategy ?? '',
    services: firstList(started?.data.services, completed?.data.services, stageServices),
    plannedStages: planned,
    status,
    phase,
    blockedOn,
    stages,
    validation:
      validationRequest || validationResult
        ? {
            ...gateTiming(validationRequest, validationResult),
            result: validationResult ? enumName(pb.ValidationResult, validationResult.data.result) : null,
            checks: (validationResult?.data.checks ?? []).map((c) => ({
              name: c.name,
              kind: c.kind,
              status: enumName(pb.CheckStatus, c.status),
              message: c.message,
              durationMs: c.durationMs,
            })),
          }
        : null,
    dependencies:
      dependencyRequest || dependencyResult
        ? {
            ...gateTiming(dependencyRequest, dependencyResult),
            result: dependencyResult
              ? enumName(pb.DependencyCheckResult, dependencyResult.data.result)
              : null,
            dependencies: (dependencyResult?.data.dependencies ?? []).map((d) => ({
              name: d.name,
              type: d.type,
              service: d.service,
              healthy: d.healthy,
              critical: d.critical,
              latencyMs: d.latencyMs,
              attempts: d.attempts,
              message: d.message,
            })),
          }
        : null,
    health: healthRecord('POST_DEPLOY', health),
    bake: healthRecord('BAKE', bake),
    rollback:
      rollbackStart || rollbackEnd
        ? {
            status: rollbackEnd ? (statusName(rollbackEnd.data.status) ?? 'FAILURE') : 'RUNNING',
            initiatedAt: rollbackStart?.event.time ?? null,
            reason: rollbackStart?.data.reason ?? '',
            targetVersion: firstNonEmpty(rollbackStart?.data.previousVersion, started?.data.previousVersion),
            stages: [...(rollbackStart?.data.stagesToRollback ?? [])],
            completedAt: rollbackEnd?.event.time ?? null,
            restoredVersion: rollbackEnd ? nonEmpty(rollbackEnd.data.restoredVersion) : null,
            durationMs: rollbackEnd ? positive(rollbackEnd.data.durationMs) : null,
            rolledBackServices: [...(rollbackEnd?.data.rolledBackServices ?? [])],
            error: rollbackEnd ? nonEmpty(rollbackEnd.data.errorMessage) : null,
          }
        : null,
    approvals,
    waitingFor,
    notifications: [...state.notifications],
    failure: failed
      ? {
          at: failed.event.time,
          reason: failed.data.reason,
          gate: failed.data.failedGate,
          stage: failed.data.failedStage,
          details: failed.data.errorDetails,
        }
      : null,
    startedAt,
    finishedAt,
    durationMs: positive(completed?.data.totalDurationMs ?? 0) ?? durationBetween(startedAt, finishedAt),
    correlationId: started?.event.correlationId ?? state.first.correlationId,
    triggeredBy: started?.data.triggeredBy ?? '',
    previousVersion: firstNonEmpty(started?.data.previousVersion, rollbackStart?.data.previousVersion),
    kind: started?.data.kind === 'rollback' ? 'rollback' : 'deploy',
    freezeOverride: started?.data.freezeOverride
      ? {
          window: started.data.freezeOverride.window,
          reason: started.data.freezeOverride.reason,
          by: started.data.freezeOverride.by,
        }
      : null,
    metrics: metrics
      ? {
          totalDurationMs: metrics.totalDurationMs,
          validationDurationMs: metrics.validationDurationMs,
          dependencyCheckDurationMs: metrics.dependencyCheckDurationMs,
          stagesDurationMs: metrics.stagesDurationMs,
          healthCheckDurationMs: metrics.healthCheckDurationMs,
          stagesTotal: metrics.stagesTotal,
          stagesSucceeded: metrics.stagesSucceeded,
          servicesDeployed: metrics.servicesDeployed,
          eventsPublished: metrics.eventsPublished,
        }
      : null,
    eventCount: state.eventCount,
    ignoredEvents: [...state.ignored],
    // Folded in time order, so the last trusted event is the latest.
    lastEventAt: state.lastAt,
  };
}

const APPROVAL_OUTCOMES: Record<number, ApprovalRecord['outcome']> = {
  [pb.ApprovalOutcome.APPROVED]: 'APPROVED',
  [pb.ApprovalOutcome.REJECTED]: 'REJECTED',
  [pb.ApprovalOutcome.EXPIRED]: 'EXPIRED',
};

/**
 * Pairs each `approval:completed` with its request: the one it names as its cause, else the
 * oldest unanswered request of the same gate. An answer whose request is not logged (trimmed)
 * still shows, without request facts.
 */
function approvalRecords(
  requests: readonly Folded<pb.ApprovalRequestedEvent>[],
  answers: readonly Folded<pb.ApprovalCompletedEvent>[],
): ApprovalRecord[] {
  const records = requests.map(
    (r): ApprovalRecord => ({
      eventId: r.event.id,
      gate: r.data.gate,
      approvers: r.data.approvers,
      reason: r.data.reason,
      requestedAt: r.event.time,
      deadline: iso(r.data.deadline),
      url: r.data.url,
      outcome: null,
      by: null,
      comment: null,
      answeredAt: null,
    }),
  );
  for (const answer of answers) {
    const open = records.filter((r) => r.answeredAt === null);
    let record =
      open.find((r) => r.eventId !== '' && r.eventId === answer.event.causationId) ??
      open.find((r) => r.gate === answer.data.gate);
    if (!record) {
      record = {
        eventId: '',
        gate: answer.data.gate,
        approvers: '',
        reason: '',
        requestedAt: null,
        deadline: null,
        url: '',
        outcome: null,
        by: null,
        comment: null,
        answeredAt: null,
      };
      records.push(record);
    }
    record.outcome = APPROVAL_OUTCOMES[answer.data.outcome] ?? null;
    record.by = nonEmpty(answer.data.by);
    record.comment = nonEmpty(answer.data.comment);
    record.answeredAt = answer.event.time;
  }
  return records;
}

function firstList(...lists: (readonly string[] | undefined)[]): string[] {
  return [...(lists.find((l) => l !== undefined && l.length > 0) ?? [])];
}
