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
  const requests = new Map<string, LoggedEvent>();
  for (const event of events) {
    if (event.source === ORCHESTRATOR_SOURCE && Object.values(REQUEST_OF).includes(event.type)) {
      requests.set(event.id, event);
    }
  }
  const answeredBy = new Map<string, string>();
  const trusted: LoggedEvent[] = [];
  const ignored: IgnoredEvent[] = [];
  const ignore = (event: LoggedEvent, code: IgnoredEvent['code'], reason: string) =>
    ignored.push({ eventId: event.id, type: event.type, source: event.source, code, reason });
  for (const event of events) {
    const requestType = REQUEST_OF[event.type];
    if (ORCHESTRATOR_TYPES.has(event.type) || STAGE_TYPE.test(event.type)) {
      if (event.source !== ORCHESTRATOR_SOURCE) {
        ignore(
          event,
          'source',
          `${event.type} from "${event.source}": only the orchestrator (${ORCHESTRATOR_SOURCE}) moves a deployment`,
        );
        continue;
      }
    } else if (requestType !== undefined) {
      const request = requests.get(event.causationId);
      if (request?.type !== requestType) {
        ignore(event, 'no-request', `${event.type} answers no ${requestType} of the orchestrator`);
        continue;
      }
      const first = answeredBy.get(request.id);
      if (first !== undefined) {
        ignore(event, 'answered', `${requestType} ${request.id} was answered first by ${first}`);
        continue;
      }
      answeredBy.set(request.id, event.id);
    }
    trusted.push(event);
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

/** The record of a deployment (see {@link buildDeploymentRecord}) and the events it ignored. */
export function foldDeployment(
  deploymentId: string,
  loggedEvents: readonly LoggedEvent[],
): { record?: UnifiedDeployment; ignored: IgnoredEvent[] } {
  const unique = new Map<string, LoggedEvent>();
  for (const event of loggedEvents) if (!unique.has(event.id)) unique.set(event.id, event);
  const all = [...unique.values()].sort(compareEvents);
  const { trusted: events, ignored } = partitionByTrust(all);
  if (events.length === 0) return { ignored };
  return { record: foldTrusted(deploymentId, events, all.length, ignored), ignored };
}

function foldTrusted(
  deploymentId: string,
  events: readonly LoggedEvent[],
  eventCount: number,
  ignoredEvents: IgnoredEvent[],
): UnifiedDeployment {
  let started: Folded<pb.DeploymentStartedEvent> | undefined;
  let completed: Folded<pb.DeploymentCompletedEvent> | undefined;
  let failed: Folded<pb.DeploymentFailedEvent> | undefined;
  let rollbackStart: Folded<pb.RollbackInitiatedEvent> | undefined;
  let rollbackEnd: Folded<pb.RollbackCompletedEvent> | undefined;
  const validation: GateEvents<pb.ValidationStartedEvent, pb.ValidationCompletedEvent> = {
    requests: [],
    results: [],
  };
  const dependency: GateEvents<pb.DependencyCheckStartedEvent, pb.DependencyCheckCompletedEvent> = {
    requests: [],
    results: [],
  };
  const health: GateEvents<pb.HealthCheckStartedEvent, pb.HealthCheckCompletedEvent> = {
    requests: [],
    results: [],
  };
  const bake: typeof health = { requests: [], results: [] };
  const stageStarts = new Map<string, Folded<pb.DeploymentStageStartedEvent>>();
  const stageEnds = new Map<string, Folded<pb.DeploymentStageCompletedEvent>>();
  const approvalRequests: Folded<pb.ApprovalRequestedEvent>[] = [];
  const approvalAnswers: Folded<pb.ApprovalCompletedEvent>[] = [];
  const notifications: NotificationRecord[] = [];
  /** The latest event that moved the deployment forward, for the phase. */
  let progress: { phase: DeploymentPhase } | undefined;

  for (const event of events) {
    const data = payloadOf(event);
    const stage = STAGE_TYPE.exec(event.type);
    if (stage) {
      const name = stage[1]!;
      if (stage[2] === 'started') {
        stageStarts.set(name, { event, data: data as pb.DeploymentStageStartedEvent });
      } else {
        stageEnds.set(name, { event, data: data as pb.DeploymentStageCompletedEvent });
      }
      progress = { phase: `stage:${name}` };
      continue;
    }
    switch (event.type) {
      case 'deployment:started':
        started ??= { event, data: data as pb.DeploymentStartedEvent };
        break;
      case 'deployment:completed':
        completed = { event, data: data as pb.DeploymentCompletedEvent };
        break;
      case 'deployment:failed':
        failed = { event, data: data as pb.DeploymentFailedEvent };
        break;
      case 'rollback:initiated':
        rollbackStart = { event, data: data as pb.RollbackInitiatedEvent };
        break;
      case 'rollback:completed':
        rollbackEnd = { event, data: data as pb.RollbackCompletedEvent };
        break;
      case 'validation:started':
        validation.requests.push({ event, data: data as pb.ValidationStartedEvent });
        progress = { phase: 'validation' };
        break;
      case 'validation:completed':
        validation.results.push({ event, data: data as pb.ValidationCompletedEvent });
        progress = { phase: 'validation' };
        break;
      case 'dependency:check:started':
        dependency.requests.push({ event, data: data as pb.DependencyCheckStartedEvent });
        progress = { phase: 'dependencies' };
        break;
      case 'dependency:check:completed':
        dependency.results.push({ event, data: data as pb.DependencyCheckCompletedEvent });
        progress = { phase: 'dependencies' };
        break;
      case 'health:check:started': {
        const request = data as pb.HealthCheckStartedEvent;
        const gate = request.purpose === pb.HealthCheckPurpose.BAKE ? bake : health;
        gate.requests.push({ event, data: request });
        progress = { phase: 'health' };
        break;
      }
      case 'health:check:completed': {
        const result = data as pb.HealthCheckCompletedEvent;
        const gate = result.purpose === pb.HealthCheckPurpose.BAKE ? bake : health;
        gate.results.push({ event, data: result });
        progress = { phase: 'health' };
        break;
      }
      case 'approval:requested':
        approvalRequests.push({ event, data: data as pb.ApprovalRequestedEvent });
        progress = { phase: 'approval' };
        break;
      case 'approval:completed':
        approvalAnswers.push({ event, data: data as pb.ApprovalCompletedEvent });
        break;
      case 'notification:sent': {
        const sent = data as pb.NotificationSentEvent;
        notifications.push({
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

  // Status: deployment:completed is final whatever else arrived; before it, the latest facts.
  let status: DeploymentStatusName;
  const finalStatus = completed ? statusName(completed.data.status) : undefined;
  if (completed) status = finalStatus ?? (failed ? 'FAILURE' : 'SUCCESS');
  else if (rollbackEnd)
    status = rollbackEnd.data.status === pb.DeploymentStatus.SUCCESS ? 'ROLLED_BACK' : 'FAILURE';
  else if (rollbackStart) status = 'RUNNING';
  else if (failed) status = 'FAILURE';
  else if (progress) status = 'RUNNING';
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
  else phase = progress?.phase ?? 'pending';

  const validationRequest = validation.requests.at(-1);
  const validationResult = validation.results.at(-1);
  const dependencyRequest = dependency.requests.at(-1);
  const dependencyResult = dependency.results.at(-1);

  const startedAt = started?.event.time ?? events[0]!.time;
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
    notifications,
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
    correlationId: started?.event.correlationId ?? events[0]!.correlationId,
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
    eventCount,
    ignoredEvents,
    // Sorted by time, so the last event is the latest.
    lastEventAt: events.at(-1)!.time,
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
