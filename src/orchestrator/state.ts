import { stableEventId } from '../events/ids.js';
import type { Artifact } from './providers/index.js';

/** Final and running statuses, as in the DeploymentStatus enum of the events. */
export type DeploymentStatusName =
  | 'PENDING'
  | 'RUNNING'
  | 'SUCCESS'
  | 'FAILURE'
  | 'ROLLED_BACK'
  | 'CANCELLED';

export const FINAL_STATUSES: readonly DeploymentStatusName[] = [
  'SUCCESS',
  'FAILURE',
  'ROLLED_BACK',
  'CANCELLED',
];

/** Where a deployment is. */
export type Phase =
  | 'queued'
  | 'validation'
  | 'dependencies'
  | 'stages'
  | 'health'
  | 'bake'
  | 'approval'
  | 'rollback'
  | 'done';

/** The gates: a request event, a worker group that answers, a result event. */
export type GateName = 'validation' | 'dependency' | 'health' | 'bake';

export const GATES: Record<GateName, { request: string; result: string; group: string; label: string }> = {
  validation: {
    request: 'validation:started',
    result: 'validation:completed',
    group: 'printery-validator',
    label: 'validation gate',
  },
  dependency: {
    request: 'dependency:check:started',
    result: 'dependency:check:completed',
    group: 'printery-dependency-checker',
    label: 'dependency gate',
  },
  health: {
    request: 'health:check:started',
    result: 'health:check:completed',
    group: 'printery-health-monitor',
    label: 'health gate',
  },
  bake: {
    request: 'health:check:started',
    result: 'health:check:completed',
    group: 'printery-health-monitor',
    label: 'bake period',
  },
};

export interface GateState {
  /** Id of the request event; the worker's result names it as its cause. */
  requestId: string;
  requestedAt: number;
  deadlineAt: number;
  completedAt?: number;
  /** The verdict as the result event says it, e.g. `PASSED`, `ALL_HEALTHY`, `UNHEALTHY`. */
  verdict?: string;
  message?: string;
}

export interface StageState {
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'rolled_back' | 'rollback_failed';
  services: string[];
  startedAt: number;
  finishedAt?: number;
  /** Deploy attempts (a stage interrupted by an orchestrator crash runs once more). */
  attempts: number;
  artifacts: Artifact[];
  error?: string;
  rollbackError?: string;
}

/** A published event, kept for progress displays (`materi deploy`) and the final metrics. */
export interface PublishedRecord {
  id: string;
  type: string;
  time: string;
  /** The payload in the proto3 JSON mapping (no secrets: specs keep `${NAME}` references). */
  data: unknown;
}

export interface FailureState {
  /** `validation`, `dependency`, `stage`, `health`, `bake`, `deadline`, `cancel`, `internal`. */
  gate: string;
  reason: string;
  stage?: string;
  details?: string;
}

export interface RollbackState {
  reason: string;
  stages: string[];
  startedAt: number;
  finishedAt?: number;
  status?: 'SUCCESS' | 'FAILURE';
  error?: string;
  manual?: boolean;
  /** Who asked for a manual rollback. */
  by?: string;
}

/** How a wait for a person ended (ApprovalOutcome of the events, without its prefix). */
export type ApprovalOutcomeName = 'APPROVED' | 'REJECTED' | 'EXPIRED';

/**
 * A wait for a person: an approval the plan asks for, or a pause after an inconclusive health
 * verdict. The deadline is fixed when the wait starts, so a saga resumed by another instance keeps it.
 */
export interface ApprovalState {
  /** `environment`, `stage:<name>` or `health`. */
  gate: string;
  /** Role allowed to answer. */
  approvers: string;
  /** Why it waits, one line. */
  reason: string;
  requestedAt: number;
  deadlineAt: number;
  timeoutMs: number;
  /** Id of the `approval:requested` event. */
  requestId: string;
  outcome?: ApprovalOutcomeName;
  /** Who answered (empty when it expired). */
  by?: string;
  comment?: string;
  answeredAt?: number;
}

/** Everything the saga must remember to continue after a crash. Stored as JSON in its row. */
export interface SagaState {
  started: boolean;
  gates: Partial<Record<GateName, GateState>>;
  /** Waits for a person, by gate (absent in states written before approvals existed). */
  approvals?: Record<string, ApprovalState>;
  stages: Record<string, StageState>;
  failure?: FailureState;
  failurePublished?: boolean;
  rollback?: RollbackState;
  warnings: string[];
  events: PublishedRecord[];
  startedAt?: number;
  finishedAt?: number;
  /** Id of the event that led to the current step: the causation id of the next event. */
  cause?: string;
}

export function emptyState(): SagaState {
  return { started: false, gates: {}, stages: {}, warnings: [], events: [] };
}

/**
 * A deterministic event id (UUID-shaped) for one step of one deployment. A saga that resumes
 * after a crash publishes the same step with the same id, so consumers — which deduplicate by
 * event id — never act on it twice.
 */
export function stepEventId(deploymentId: string, step: string): string {
  return stableEventId(`${deploymentId}\u0000${step}`, 'sha256');
}

/** The wait for a person that has no answer yet, if any. */
export function pendingApproval(state: SagaState): ApprovalState | undefined {
  return Object.values(state.approvals ?? {}).find((approval) => !approval.outcome);
}
