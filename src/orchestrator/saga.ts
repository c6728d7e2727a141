import { type JsonObject, toJson } from '@bufbuild/protobuf';
import type { Kysely, Transaction } from 'kysely';
import { backoffDelay, sleep } from '../bus/backoff.js';
import type { OutgoingEvent, Publisher } from '../bus/types.js';
import { describeCause } from '../errors/index.js';
import {
  ApprovalOutcome,
  DeploymentStatus,
  HealthCheckPurpose,
  resolveEventType,
  stageEventType,
} from '../events/index.js';
import { ORCHESTRATOR_SOURCE } from '../events/sources.js';
import type { Logger } from '../runtime/logging.js';
import type { Lookup } from '../runtime/references.js';
import type { Database } from '../store/index.js';
import {
  buildDependencySpec,
  buildHealthSpec,
  buildValidationSpec,
  executionWaves,
  formatDuration,
  type Plan,
  type PlanStage,
  rollbackWavesFor,
} from './plan/index.js';
import { deployStage, rollbackStage, StageFailedError, type StageProvider } from './providers/index.js';
import { SagaRowTracker, saveSagaState } from './saga-rows.js';
import {
  type ApprovalOutcomeName,
  type ApprovalState,
  type DeploymentStatusName,
  type FailureState,
  GATES,
  type GateName,
  type Phase,
  type SagaState,
  stepEventId,
} from './state.js';

/** The deployment row fields a saga works with. */
export interface SagaRecord {
  id: string;
  project: string;
  environment: string;
  version: string;
  previousVersion?: string;
  correlationId: string;
  triggeredBy: string;
  status: DeploymentStatusName;
  phase: Phase;
  state: SagaState;
  /** Set for a manual rollback of a finished deployment. */
  reason?: string;
  /**
   * `rollback`: a rollback of the environment to an earlier release (`version`), which skips the
   * validation and dependency gates (that version ran there) and is not rolled back automatically.
   * @defaultValue `deploy`
   */
  kind?: 'deploy' | 'rollback';
  /** Submitted inside a freeze with `--override-freeze`: announced in `deployment:started`. */
  freezeOverride?: { window: string; reason: string; by: string };
}

export interface SagaDeps {
  db: Kysely<Database>;
  publisher: Publisher;
  logger: Logger;
  /** Resolves `${NAME}` in provider settings (the orchestrator's environment). */
  env: Lookup;
  dataDir: string;
  /** This orchestrator instance; every write checks it still owns the deployment. */
  owner: string;
  /** Waits for the result event of a gate request, or resolves undefined at the deadline. */
  awaitResult(
    requestId: string,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<{ eventId: string; payload: JsonObject } | undefined>;
  /**
   * Waits for the answer to a wait for a person (written durably by whoever answers). At the
   * deadline it records and resolves the expiry; resolves undefined only when `signal` aborts.
   */
  awaitApproval(
    gate: string,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<{ outcome: ApprovalOutcomeName; by: string; comment: string; answeredAt: number } | undefined>;
  /** The dashboard's address, for the link in `approval:requested`; empty for none. */
  dashboardUrl?: string;
  /** How long publishing may keep failing (Redis down) before the deployment fails closed. @defaultValue 30000 */
  publishRetryMs?: number;
  /** Replaces the provider of a stage (tests). */
  providerFor?: (stage: PlanStage) => StageProvider | undefined;
  /**
   * Runs in the transaction that writes the final state (e.g. the release ledger), so both are
   * written or neither.
   */
  onFinal?: (trx: Transaction<Database>, record: SagaRecord) => Promise<void>;
}

/** How long the record of a published event waits for the next step's save to carry it. */
const SAVE_SOON_MS = 50;

/** The orchestrator lost its lease on the deployment (another instance took over): stop quietly. */
export class LostOwnershipError extends Error {
  constructor(id: string) {
    super(`deployment ${id} is now run by another orchestrator instance`);
    this.name = 'LostOwnershipError';
  }
}

/** The event bus stayed unreachable past the retry budget: the deployment fails closed. */
class BusUnavailableError extends Error {}

/** A gate or stage failed: carries what the failure event will say. */
class DeploymentFailure extends Error {
  constructor(readonly failure: FailureState) {
    super(failure.reason);
  }
}

class Cancelled extends Error {}

const STATUS_NUMBER: Record<string, DeploymentStatus> = {
  SUCCESS: DeploymentStatus.SUCCESS,
  FAILURE: DeploymentStatus.FAILURE,
  ROLLED_BACK: DeploymentStatus.ROLLED_BACK,
  CANCELLED: DeploymentStatus.CANCELLED,
};

function enumName(value: unknown, prefix: string): string {
  return typeof value === 'string' ? value.replace(prefix, '') : String(value ?? '');
}

/**
 * Runs one deployment to its end: the durable, event-driven saga. Every step is persisted before
 * and after it runs and published with a deterministic event id, so a saga resumed by another
 * orchestrator instance after a crash continues where the first stopped — re-running at most the
 * step in flight — and never leaves the deployment RUNNING.
 */
export class DeploymentSaga {
  private readonly cancel = new AbortController();
  private readonly waves: PlanStage[][];
  /** Which stage and event rows are written. */
  private readonly rows: SagaRowTracker;
  /** Settles when the last save started has ended. */
  private saved: Promise<void> = Promise.resolve();
  /** A save put off by {@link DeploymentSaga.saveSoon}, and the error it failed with. */
  private soonTimer: NodeJS.Timeout | undefined;
  private soonError: unknown;
  /** The save waiting for the running one, shared by everyone who asks meanwhile. */
  private nextSave: { final: boolean; promise: Promise<void> } | undefined;

  constructor(
    private readonly record: SagaRecord,
    private readonly plan: Plan,
    private readonly deps: SagaDeps,
  ) {
    this.waves = executionWaves(plan).waves;
    this.rows = new SagaRowTracker(record.state);
  }

  get id(): string {
    return this.record.id;
  }

  /** Asks the saga to stop at the next step (the running stage's provider is aborted). */
  requestCancel(): void {
    this.cancel.abort(new Cancelled('cancelled'));
  }

  /** Runs to the end; resolves with the final status (or throws LostOwnershipError). */
  async run(): Promise<DeploymentStatusName> {
    const { state } = this.record;
    try {
      if (this.record.phase === 'rollback' && state.rollback?.manual) {
        await this.rollBack();
        return await this.finish(state.rollback?.status === 'SUCCESS' ? 'ROLLED_BACK' : 'FAILURE');
      }
      if (!state.failure) await this.deploy();
    } catch (error) {
      if (error instanceof LostOwnershipError) throw error;
      if (error instanceof BusUnavailableError) return this.failClosed(error.message);
      if (error instanceof Cancelled || (this.cancel.signal.aborted && error instanceof StageFailedError)) {
        state.failure = { gate: 'cancel', reason: `cancelled by ${this.cancelledBy ?? 'an operator'}` };
      } else if (error instanceof DeploymentFailure) {
        state.failure = error.failure;
      } else {
        this.deps.logger.error({ err: error, deployment_id: this.id }, 'deployment saga failed unexpectedly');
        state.failure = { gate: 'internal', reason: `orchestrator error: ${describeCause(error)}` };
      }
      await this.save();
    }
    try {
      if (!state.failure) return await this.finish('SUCCESS');
      return await this.handleFailure();
    } catch (error) {
      if (error instanceof LostOwnershipError) throw error;
      if (error instanceof BusUnavailableError) return this.failClosed(error.message);
      throw error;
    }
  }

  /** Set by the orchestrator from the row before a cancel. */
  cancelledBy: string | undefined;
  /** Set by the orchestrator: roll back the completed stages on cancel. */
  rollbackOnCancel = false;

  // -------------------------------------------------------------------------------------------
  // The happy path

  private async deploy(): Promise<void> {
    const { state } = this.record;
    if (!state.started) {
      state.startedAt = Date.now();
      await this.publish('started', {
        type: 'deployment:started',
        data: {
          deploymentId: this.id,
          version: this.record.version,
          environment: this.record.environment,
          strategy: this.plan.strategy,
          services: Object.keys(this.plan.services),
          project: this.record.project,
          triggeredBy: this.record.triggeredBy,
          previousVersion: this.record.previousVersion ?? '',
          stages: this.waves.flat().map((s) => s.name),
          kind: this.record.kind ?? 'deploy',
          freezeOverride: this.record.freezeOverride,
        },
      });
      state.started = true;
      await this.setPhase('validation', true);
    }
    // A rollback to an earlier release: that version passed both gates and its approvals when it
    // was released there; restoring it waits for neither.
    const rollingBack = this.record.kind === 'rollback';
    if (!rollingBack) {
      await this.gate('validation');
      await this.gate('dependency');
    }
    if (this.plan.approval?.required && !rollingBack)
      await this.approval(
        'environment',
        this.plan.approval,
        `the plan asks for an approval before deploying ${this.record.version} to ${this.record.environment}`,
      );
    await this.runStages();
    if (buildHealthSpec(this.plan).services.length === 0) {
      // Nothing to watch: the plan gives no service a health URL.
      this.warn('no service has a health URL, so the health gate was skipped');
      return;
    }
    await this.gate('health');
    await this.pauseIfInconclusive();
    if (this.plan.health.bakeMs > 0) await this.gate('bake');
  }

  /** The health verdict is DEGRADED or INCONCLUSIVE (not failing, not clearly healthy). */
  private healthInconclusive(): boolean {
    const verdict = this.record.state.gates.health?.verdict ?? '';
    return (
      !verdict.endsWith(':ROLLBACK') && (verdict.startsWith('DEGRADED') || verdict.startsWith('INCONCLUSIVE'))
    );
  }

  /** `health.onInconclusive: pause`: a person decides whether an inconclusive release stays. */
  private async pauseIfInconclusive(): Promise<void> {
    if (this.plan.health.onInconclusive !== 'pause' || !this.healthInconclusive()) return;
    const health = this.record.state.gates.health!;
    await this.approval(
      'health',
      {
        approvers: this.plan.approval?.approvers ?? 'deployer',
        timeoutMs: this.plan.approval?.timeoutMs ?? 3_600_000,
      },
      `health gate ${health.verdict}: ${health.message ?? 'no details'}`,
    );
  }

  /**
   * Waits durably for a person: records the wait (its deadline fixed once), publishes
   * `approval:requested` once, waits for the answer, publishes `approval:completed`, and goes on
   * when approved. Rejected or expired, the deployment fails; a cancel during the wait cancels it.
   * A resumed saga finds the wait in its state and continues it.
   */
  private async approval(
    gate: string,
    settings: { approvers: string; timeoutMs: number },
    reason: string,
  ): Promise<void> {
    const { state } = this.record;
    state.approvals ??= {};
    let current: ApprovalState | undefined = state.approvals[gate];
    if (!current?.outcome) {
      this.throwIfCancelled();
      await this.setPhase('approval', true);
      if (!current) {
        const now = Date.now();
        current = {
          gate,
          approvers: settings.approvers,
          reason,
          requestedAt: now,
          deadlineAt: now + settings.timeoutMs,
          timeoutMs: settings.timeoutMs,
          requestId: stepEventId(this.id, `approval:${gate}:requested`),
        };
        state.approvals[gate] = current;
        await this.save();
      }
      const wait = current;
      // Published at most once: a resumed saga that finds it in its events does not repeat it, and
      // one that crashed before recording it publishes the same id (consumers deduplicate).
      if (!state.events.some((e) => e.id === wait.requestId)) {
        const base = this.deps.dashboardUrl?.replace(/\/+$/, '');
        await this.publish(`approval:${gate}:requested`, {
          type: 'approval:requested',
          id: wait.requestId,
          data: {
            deploymentId: this.id,
            ...this.context(),
            gate,
            approvers: wait.approvers,
            reason: wait.reason,
            deadline: timestamp(wait.deadlineAt),
            url: base ? `${base}/deployments/${encodeURIComponent(this.id)}` : '',
          },
        });
      }
      this.saveBeforeWaiting();
      const answer = await this.deps.awaitApproval(gate, wait.deadlineAt, this.cancel.signal);
      this.throwIfCancelled();
      if (!answer) throw new Cancelled('cancelled');
      wait.outcome = answer.outcome;
      wait.by = answer.by;
      wait.comment = answer.comment;
      wait.answeredAt = answer.answeredAt;
      await this.save();
    }
    const done = current;
    const completedStep = `approval:${gate}:completed`;
    if (!state.events.some((e) => e.id === stepEventId(this.id, completedStep))) {
      await this.publish(completedStep, {
        type: 'approval:completed',
        data: {
          deploymentId: this.id,
          ...this.context(),
          gate,
          outcome: ApprovalOutcome[done.outcome!],
          by: done.by ?? '',
          comment: done.comment ?? '',
        },
      });
    }
    const failedGate = gate === 'health' ? 'health' : 'approval';
    if (done.outcome === 'REJECTED') {
      throw new DeploymentFailure({
        gate: failedGate,
        reason: `rejected by ${done.by || 'an operator'}${done.comment ? `: ${done.comment}` : ''}`,
        details: done.reason,
      });
    }
    if (done.outcome === 'EXPIRED') {
      throw new DeploymentFailure({
        gate: failedGate,
        reason: `approval for ${gate} expired after ${formatDuration(done.timeoutMs)}: nobody approved or rejected it (approvers: ${done.approvers})`,
        details: done.reason,
      });
    }
    if (gate === 'health')
      this.warn(`health gate ${this.record.state.gates.health?.verdict}: approved by ${done.by}`);
  }

  private gateRequest(gate: GateName, requestId: string, deadlineSeconds: number): OutgoingEvent {
    const base = { deploymentId: this.id, deadlineSeconds };
    switch (gate) {
      case 'validation':
        return {
          type: 'validation:started',
          id: requestId,
          data: {
            ...base,
            version: this.record.version,
            environment: this.record.environment,
            spec: buildValidationSpec(this.plan, this.record.version) as unknown as JsonObject,
          },
        };
      case 'dependency':
        return {
          type: 'dependency:check:started',
          id: requestId,
          data: {
            ...base,
            environment: this.record.environment,
            spec: buildDependencySpec(this.plan) as unknown as JsonObject,
          },
        };
      default: {
        const spec = buildHealthSpec(this.plan, { purpose: gate === 'bake' ? 'bake' : 'post-deploy' });
        return {
          type: 'health:check:started',
          id: requestId,
          data: {
            ...base,
            // Only services with a health endpoint can be watched.
            services: spec.services.map((s) => s.name),
            purpose: gate === 'bake' ? HealthCheckPurpose.BAKE : HealthCheckPurpose.POST_DEPLOY,
            spec: spec as unknown as JsonObject,
          },
        };
      }
    }
  }

  private gateTimeoutMs(gate: GateName): number {
    if (gate === 'validation') return this.plan.validation.timeoutMs;
    if (gate === 'dependency') return this.plan.dependencies.timeoutMs;
    if (gate === 'bake') return this.plan.health.bakeMs + this.plan.health.timeoutMs;
    return this.plan.health.timeoutMs;
  }

  /** Publishes a gate's request (once) and waits for its result; throws on a failing verdict. */
  private async gate(gate: GateName): Promise<void> {
    const { state } = this.record;
    const spec = GATES[gate];
    let current = state.gates[gate];
    if (current?.verdict) return this.judge(gate);
    this.throwIfCancelled();
    await this.setPhase(gate === 'dependency' ? 'dependencies' : gate, true);
    if (!current) {
      const timeoutMs = this.gateTimeoutMs(gate);
      current = {
        requestId: stepEventId(this.id, `gate:${gate}`),
        requestedAt: Date.now(),
        deadlineAt: Date.now() + timeoutMs,
      };
      state.gates[gate] = current;
      await this.save();
      await this.publish(
        `gate:${gate}`,
        this.gateRequest(gate, current.requestId, Math.ceil(timeoutMs / 1000)),
      );
    }
    this.saveBeforeWaiting();
    const answer = await this.deps.awaitResult(current.requestId, current.deadlineAt, this.cancel.signal);
    this.throwIfCancelled();
    const result = answer?.payload;
    if (answer) this.record.state.cause = answer.eventId;
    if (!result) {
      const waited = Math.round((current.deadlineAt - current.requestedAt) / 1000);
      throw new DeploymentFailure({
        gate: 'deadline',
        reason: `${spec.label}: no ${spec.result} from ${spec.group} within ${waited} s — is a ${spec.group} worker running? (materi workers)`,
      });
    }
    current.completedAt = Date.now();
    current.verdict =
      gate === 'validation'
        ? enumName(result.result, 'VALIDATION_RESULT_')
        : gate === 'dependency'
          ? enumName(result.result, 'DEPENDENCY_CHECK_RESULT_')
          : enumName(result.status, 'HEALTH_STATUS_');
    current.message = summarizeResult(gate, result);
    const execution = enumName(result.executionStatus, 'EXECUTION_STATUS_');
    // Keptn's distinction: the checks not running at all is not the same as them failing.
    if (execution && execution !== 'SUCCEEDED') current.verdict = execution;
    else if (result.rollbackRecommended === true) current.verdict = `${current.verdict}:ROLLBACK`;
    // Saved with the next step (or the failure): a crash before it reads the result again.
    this.saveSoon();
    this.judge(gate);
  }

  /** Turns a gate's recorded verdict into go or a failure. */
  private judge(gate: GateName): void {
    const current = this.record.state.gates[gate]!;
    const verdict = current.verdict ?? '';
    const label = GATES[gate].label;
    const fail = (reason: string) => {
      throw new DeploymentFailure({ gate, reason: `${label}: ${reason}`, details: current.message });
    };
    if (verdict === 'ERRORED') fail(`${GATES[gate].group} could not run its checks: ${current.message}`);
    if (verdict === 'TIMED_OUT')
      fail(`${GATES[gate].group} did not finish its checks in time: ${current.message}`);
    if (gate === 'validation') {
      if (verdict === 'FAILED') fail(current.message ?? 'failed');
      if (verdict === 'WARNINGS') this.warn(`validation passed with warnings: ${current.message}`);
      return;
    }
    if (gate === 'dependency') {
      if (verdict === 'ALL_UNHEALTHY') fail(current.message ?? 'dependencies unhealthy');
      if (verdict === 'SOME_DEGRADED')
        this.warn(`some non-critical dependencies are unhealthy: ${current.message}`);
      return;
    }
    if (verdict.endsWith(':ROLLBACK') || verdict === 'UNHEALTHY') fail(current.message ?? 'unhealthy');
    if (verdict.startsWith('DEGRADED') || verdict.startsWith('INCONCLUSIVE')) {
      // The bake period only warns; the health gate follows health.onInconclusive (`pause` is
      // handled by pauseIfInconclusive once the verdict is recorded).
      if (gate === 'health' && this.plan.health.onInconclusive === 'fail')
        fail(`${verdict} verdict (health.onInconclusive: fail): ${current.message ?? 'no details'}`);
      this.warn(`${label}: ${current.message}`);
    }
  }

  private warn(message: string): void {
    if (!this.record.state.warnings.includes(message)) this.record.state.warnings.push(message);
  }

  private async runStages(): Promise<void> {
    const { state } = this.record;
    await this.setPhase('stages', true);
    for (const wave of this.waves) {
      this.throwIfCancelled();
      const todo = wave.filter((s) => state.stages[s.name]?.status !== 'succeeded');
      // One at a time, before the wave: a rejected stage must not leave a sibling waiting.
      for (const stage of todo) {
        if (!stage.approval?.required || this.record.kind === 'rollback') continue;
        await this.approval(
          `stage:${stage.name}`,
          stage.approval,
          `the plan asks for an approval before stage ${stage.name} deploys ${this.record.version}`,
        );
        await this.setPhase('stages', true);
      }
      const outcomes = await Promise.allSettled(todo.map((stage) => this.runStage(stage)));
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;
    }
  }

  private async runStage(stage: PlanStage): Promise<void> {
    const { state } = this.record;
    const previous = state.stages[stage.name];
    if (previous?.status === 'running' && previous.attempts >= 2) {
      throw new DeploymentFailure({
        gate: 'stage',
        stage: stage.name,
        reason: `stage ${stage.name}: interrupted twice by an orchestrator failure; giving up`,
      });
    }
    const attempt = (previous?.attempts ?? 0) + 1;
    const stageState = {
      status: 'running' as const,
      services: stage.services,
      startedAt: Date.now(),
      attempts: attempt,
      artifacts: previous?.artifacts ?? [],
    };
    state.stages[stage.name] = stageState;
    await this.save();
    const waveCause = state.cause ?? '';
    const startedId = stepEventId(this.id, `stage:${stage.name}:started:${attempt}`);
    await this.publish(
      `stage:${stage.name}:started:${attempt}`,
      {
        type: stageEventType(stage.name, 'started'),
        data: {
          deploymentId: this.id,
          stage: stage.name,
          description: stage.description ?? '',
          services: stage.services,
          provider: stage.provider.type,
        },
      },
      waveCause,
    );
    let error: StageFailedError | undefined;
    try {
      this.saveBeforeWaiting();
      const outcome = await deployStage({
        stage,
        deployment: this.deploymentInfo(),
        signal: this.cancel.signal,
        logger: this.deps.logger.child({ deployment_id: this.id }),
        env: this.deps.env,
        baseDir: this.plan.baseDir,
        dataDir: this.deps.dataDir,
        provider: this.deps.providerFor?.(stage),
        onArtifact: (artifact) => {
          const list = state.stages[stage.name]!.artifacts;
          const at = list.findIndex((a) => a.name === artifact.name);
          if (at >= 0) list[at] = artifact;
          else list.push(artifact);
          void this.save().catch(() => {});
        },
      });
      state.stages[stage.name] = {
        ...state.stages[stage.name]!,
        artifacts: outcome.artifacts,
        status: 'succeeded',
      };
    } catch (caught) {
      error = caught instanceof StageFailedError ? caught : undefined;
      const message = describeCause(caught);
      state.stages[stage.name] = {
        ...state.stages[stage.name]!,
        status: this.cancel.signal.aborted ? 'cancelled' : 'failed',
        error: message,
        artifacts: error?.artifacts ?? state.stages[stage.name]!.artifacts,
      };
    }
    const done = state.stages[stage.name]!;
    done.finishedAt = Date.now();
    await this.save();
    await this.publish(
      `stage:${stage.name}:completed:${attempt}`,
      {
        type: stageEventType(stage.name, 'completed'),
        data: {
          deploymentId: this.id,
          stage: stage.name,
          status:
            done.status === 'succeeded'
              ? DeploymentStatus.SUCCESS
              : done.status === 'cancelled'
                ? DeploymentStatus.CANCELLED
                : DeploymentStatus.FAILURE,
          durationMs: done.finishedAt - done.startedAt,
          errorMessage: done.error ?? '',
          artifacts: done.artifacts.map((a) => ({
            name: a.name,
            kind: a.kind,
            value: a.value.slice(0, 8192),
          })),
          services: stage.services,
        },
      },
      startedId,
    );
    // The next step follows from the last stage that completed.
    state.cause = stepEventId(this.id, `stage:${stage.name}:completed:${attempt}`);
    if (done.status === 'cancelled') throw new Cancelled('cancelled');
    if (done.status === 'failed') {
      throw new DeploymentFailure({
        gate: 'stage',
        stage: stage.name,
        reason: `stage ${stage.name} failed: ${done.error}`,
        details: done.error,
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Failure, rollback, the end

  private async handleFailure(): Promise<DeploymentStatusName> {
    const { state } = this.record;
    const failure = state.failure!;
    const cancelled = failure.gate === 'cancel';
    if (!cancelled && !state.failurePublished) {
      await this.publish('failed', {
        type: 'deployment:failed',
        data: {
          deploymentId: this.id,
          reason: failure.reason,
          failedStage: failure.stage ?? '',
          errorDetails: failure.details ?? '',
          failedGate: failure.gate,
          ...this.context(),
        },
      });
      state.failurePublished = true;
      await this.save();
    }
    const deployed = Object.entries(state.stages)
      .filter(
        ([, s]) => s.status === 'succeeded' || s.status === 'rolled_back' || s.status === 'rollback_failed',
      )
      .map(([name]) => name);
    const wantRollback = cancelled
      ? this.rollbackOnCancel
      : this.plan.rollback.automatic && this.record.kind !== 'rollback';
    if (wantRollback && deployed.length > 0) {
      state.rollback ??= {
        reason: failure.reason,
        stages: rollbackWavesFor(this.plan, deployed)
          .flat()
          .map((s) => s.name),
        startedAt: Date.now(),
      };
      await this.rollBack();
      if (cancelled) return this.finish('CANCELLED');
      return this.finish(state.rollback.status === 'SUCCESS' ? 'ROLLED_BACK' : 'FAILURE');
    }
    if (!cancelled && wantRollback && deployed.length === 0)
      this.warn('nothing was deployed, so there is nothing to roll back');
    return this.finish(cancelled ? 'CANCELLED' : 'FAILURE');
  }

  /** Rolls back the recorded stages in reverse dependency order, publishing initiated/completed. */
  private async rollBack(): Promise<void> {
    const { state } = this.record;
    const rollback = state.rollback!;
    await this.setPhase('rollback');
    await this.publish('rollback:initiated', {
      type: 'rollback:initiated',
      data: {
        deploymentId: this.id,
        previousVersion: this.record.previousVersion ?? '',
        reason: rollback.reason,
        stagesToRollback: rollback.stages,
        requestedBy: rollback.manual ? (rollback.by ?? '') : '',
        ...this.context(),
      },
    });
    if (!this.record.previousVersion) {
      rollback.status = 'FAILURE';
      rollback.error = `no earlier successful version of ${this.record.project} in ${this.record.environment} to roll back to`;
    } else {
      const errors: string[] = [];
      for (const wave of rollbackWavesFor(this.plan, rollback.stages)) {
        await Promise.all(
          wave.map(async (stage) => {
            const stageState = state.stages[stage.name]!;
            if (stageState.status === 'rolled_back') return;
            try {
              this.saveBeforeWaiting();
              await rollbackStage({
                stage,
                deployment: this.deploymentInfo(),
                logger: this.deps.logger.child({ deployment_id: this.id }),
                env: this.deps.env,
                baseDir: this.plan.baseDir,
                dataDir: this.deps.dataDir,
                artifacts: stageState.artifacts,
                provider: this.deps.providerFor?.(stage),
              });
              stageState.status = 'rolled_back';
            } catch (error) {
              stageState.status = 'rollback_failed';
              stageState.rollbackError = describeCause(error);
              errors.push(`${stage.name}: ${stageState.rollbackError}`);
            }
            await this.save();
          }),
        );
      }
      rollback.status = errors.length === 0 ? 'SUCCESS' : 'FAILURE';
      if (errors.length > 0) rollback.error = errors.join('; ');
    }
    rollback.finishedAt = Date.now();
    await this.save();
    const services = rollback.stages.flatMap((name) =>
      state.stages[name]?.status === 'rolled_back' ? state.stages[name]!.services : [],
    );
    await this.publish('rollback:completed', {
      type: 'rollback:completed',
      data: {
        deploymentId: this.id,
        status: rollback.status === 'SUCCESS' ? DeploymentStatus.SUCCESS : DeploymentStatus.FAILURE,
        restoredVersion: rollback.status === 'SUCCESS' ? (this.record.previousVersion ?? '') : '',
        durationMs: rollback.finishedAt - rollback.startedAt,
        rolledBackServices: services,
        errorMessage: rollback.error ?? '',
        ...this.context(),
      },
    });
  }

  private async finish(status: DeploymentStatusName): Promise<DeploymentStatusName> {
    const { state } = this.record;
    state.finishedAt ??= Date.now();
    const stageResults = Object.entries(state.stages).map(([stage, s]) => ({
      stage,
      status:
        s.status === 'succeeded'
          ? DeploymentStatus.SUCCESS
          : s.status === 'rolled_back'
            ? DeploymentStatus.ROLLED_BACK
            : s.status === 'cancelled'
              ? DeploymentStatus.CANCELLED
              : DeploymentStatus.FAILURE,
      durationMs: (s.finishedAt ?? state.finishedAt!) - s.startedAt,
      errorMessage: s.error ?? s.rollbackError ?? '',
      services: s.services,
      artifacts: s.artifacts.map((a) => ({ name: a.name, kind: a.kind, value: a.value.slice(0, 8192) })),
      startedAt: timestamp(s.startedAt),
      finishedAt: timestamp(s.finishedAt ?? state.finishedAt!),
    }));
    const gateMs = (g: GateName) => {
      const gate = state.gates[g];
      return gate?.completedAt ? gate.completedAt - gate.requestedAt : 0;
    };
    const total = state.finishedAt - (state.startedAt ?? state.finishedAt);
    await this.publish(`completed:${status}`, {
      type: 'deployment:completed',
      data: {
        deploymentId: this.id,
        status: STATUS_NUMBER[status]!,
        totalDurationMs: total,
        stageResults,
        metrics: {
          totalDurationMs: total,
          validationDurationMs: gateMs('validation'),
          dependencyCheckDurationMs: gateMs('dependency'),
          stagesDurationMs: stageResults.reduce((n, s) => n + s.durationMs, 0),
          healthCheckDurationMs: gateMs('health') + gateMs('bake'),
          stagesTotal: this.waves.flat().length,
          stagesSucceeded: Object.values(state.stages).filter((s) => s.status === 'succeeded').length,
          servicesDeployed: status === 'SUCCESS' ? Object.keys(this.plan.services).length : 0,
          eventsPublished: state.events.length + 1,
        },
        version: this.record.version,
        environment: this.record.environment,
        project: this.record.project,
        services: Object.keys(this.plan.services),
      },
    });
    this.record.status = status;
    this.record.phase = 'done';
    await this.save(true);
    return status;
  }

  /** The bus is gone: record the failure locally (no events can be published) and stop. */
  private async failClosed(reason: string): Promise<DeploymentStatusName> {
    const { state } = this.record;
    state.failure ??= { gate: 'internal', reason };
    state.warnings.push(`failed closed: ${reason}`);
    state.finishedAt = Date.now();
    this.record.status = 'FAILURE';
    this.record.phase = 'done';
    this.deps.logger.error(
      { deployment_id: this.id, reason },
      'event bus unreachable; deployment failed closed',
    );
    await this.save(true);
    return 'FAILURE';
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  private context() {
    return {
      environment: this.record.environment,
      version: this.record.version,
      project: this.record.project,
    };
  }

  private deploymentInfo() {
    return {
      id: this.id,
      version: this.record.version,
      previousVersion: this.record.previousVersion,
      environment: this.record.environment,
      project: this.record.project,
    };
  }

  private throwIfCancelled(): void {
    if (this.cancel.signal.aborted) throw new Cancelled('cancelled');
  }

  /** Sets the phase and saves it; `soon` when the step that follows saves at once (or waits). */
  private async setPhase(phase: Phase, soon = false): Promise<void> {
    if (this.record.phase === phase) return;
    this.record.phase = phase;
    if (this.record.status === 'PENDING') this.record.status = 'RUNNING';
    if (soon) this.saveSoon();
    else await this.save();
  }

  /**
   * Publishes one step's event with its deterministic id. Transient bus failures are retried
   * with backoff up to the retry budget; then the deployment fails closed.
   */
  private async publish(step: string, event: OutgoingEvent, causation?: string): Promise<void> {
    const id = event.id ?? stepEventId(this.id, step);
    const budget = this.deps.publishRetryMs ?? 30_000;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const published = await this.deps.publisher.publish({
          ...event,
          id,
          source: ORCHESTRATOR_SOURCE,
          correlationId: this.record.correlationId,
          causationId: causation ?? this.record.state.cause ?? '',
        });
        if (causation === undefined) this.record.state.cause = id;
        const spec = resolveEventType(event.type);
        this.record.state.events.push({
          id,
          type: event.type,
          time: published.event.time.toISOString(),
          data: toJson(spec.schema, published.event.data as never),
        });
        // Recorded with the next step's save; on its own only if no save comes soon.
        this.saveSoon();
        return;
      } catch (error) {
        if (Date.now() - started > budget) {
          throw new BusUnavailableError(
            `event bus unreachable for ${Math.round(budget / 1000)} s: ${describeCause(error)}`,
          );
        }
        this.deps.logger.warn(
          { err: error, deployment_id: this.id, step, attempt },
          'publishing failed; retrying',
        );
        await sleep(backoffDelay(attempt, { baseMs: 200, maxMs: 5000, jitter: 0.2 }));
      }
    }
  }

  /**
   * Writes the state, only while this instance still owns the deployment: the row's core and the
   * stage and event rows that changed (O(1) rows per step, see saga-rows.ts). Saves never overlap:
   * one asked for while another runs waits for it and then writes the latest state, and the saves
   * asked for meanwhile (parallel stages) share that write.
   */
  private save(final = false): Promise<void> {
    clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    if (this.soonError !== undefined) {
      const error = this.soonError;
      this.soonError = undefined;
      return Promise.reject(error);
    }
    if (this.nextSave) {
      this.nextSave.final ||= final;
      return this.nextSave.promise;
    }
    const next = { final, promise: Promise.resolve() };
    next.promise = this.saved.then(() => {
      this.nextSave = undefined;
      return this.write(next.final);
    });
    this.nextSave = next;
    this.saved = next.promise.catch(() => {});
    return next.promise;
  }

  /**
   * A save put off by {@link SAVE_SOON_MS}: a published event is recorded by the save of the step
   * that follows, which nearly always comes at once, instead of a save of its own. Should the
   * process stop before, the resumed saga publishes the step again under the same id, which
   * consumers drop — the crash contract of every step. A failure is thrown by the next save.
   */
  private saveSoon(): void {
    if (this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.save().catch((error: unknown) => {
        this.soonError ??= error;
      });
    }, SAVE_SOON_MS);
  }

  /**
   * Before a wait (a gate, an approval, a stage's command), a put-off save starts at once, in the
   * background: no step follows soon to carry the record of the event just published.
   */
  private saveBeforeWaiting(): void {
    if (!this.soonTimer) return;
    clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    this.save().catch((error: unknown) => {
      this.soonError ??= error;
    });
  }

  private async write(final: boolean): Promise<void> {
    const changes = this.rows.changes(this.record.state);
    const onFinal = final ? this.deps.onFinal : undefined;
    const owned = await saveSagaState(
      this.deps.db,
      {
        id: this.id,
        owner: this.deps.owner,
        status: this.record.status,
        phase: this.record.phase,
        updatedAt: Date.now(),
        final,
      },
      changes,
      onFinal && ((trx) => onFinal(trx, this.record)),
    );
    if (!owned) throw new LostOwnershipError(this.id);
    changes.written();
  }
}

function timestamp(ms: number) {
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

/** One line describing a gate result: the failing checks, the unhealthy services. */
function summarizeResult(gate: GateName, result: JsonObject): string {
  const message = typeof result.message === 'string' && result.message ? result.message : '';
  if (gate === 'validation') {
    const checks = (result.checks as JsonObject[] | undefined) ?? [];
    const bad = checks.filter(
      (c) => c.status === 'CHECK_STATUS_FAILED' || c.status === 'CHECK_STATUS_WARNING',
    );
    if (bad.length > 0) return bad.map((c) => `${c.name}: ${c.message}`).join('; ');
    return message || `${checks.length} check(s) passed`;
  }
  if (gate === 'dependency') {
    const deps = (result.dependencies as JsonObject[] | undefined) ?? [];
    const bad = deps.filter((d) => d.healthy !== true);
    if (bad.length > 0)
      return bad.map((d) => `${d.name}${d.critical ? ' (critical)' : ''}: ${d.message}`).join('; ');
    return message || `${deps.length} dependenc${deps.length === 1 ? 'y' : 'ies'} healthy`;
  }
  const reason = typeof result.reason === 'string' ? result.reason : '';
  return reason || message;
}
