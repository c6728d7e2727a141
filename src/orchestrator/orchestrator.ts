import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { type JsonObject, toJson } from '@bufbuild/protobuf';
import type { Kysely, Transaction } from 'kysely';
import { sleep } from '../bus/backoff.js';
import { Router } from '../bus/router.js';
import type { Publisher, Subscriber, SubscriptionObserver } from '../bus/types.js';
import { BadInputError, ConflictError, NotCurrentReleaseError, NotFoundError } from '../errors/index.js';
import { DeploymentStatus, resolveEventType } from '../events/index.js';
import { type Logger, silentLogger } from '../runtime/logging.js';
import { type Lookup, planLookup } from '../runtime/references.js';
import type { Database } from '../store/index.js';
import { checkFreeze, type FreezeOverride, loadFreezeSettings, settingsWindowsFor } from './freeze.js';
import { type IncidentRules, incidentRegistration, openIncident } from './incidents.js';
import {
  currentRelease,
  listEnvironments,
  type Release,
  recordCurrentRelease,
  releaseHistory,
} from './ledger.js';
import { type Plan, type PlanStage, parsePlan, VERSION_PATTERN } from './plan/index.js';
import type { StageProvider } from './providers/index.js';
import { DeploymentSaga, LostOwnershipError, type SagaRecord } from './saga.js';
import { coreJson, loadSagaState, loadSagaStates } from './saga-rows.js';
import {
  type ApprovalOutcomeName,
  type DeploymentStatusName,
  emptyState,
  FINAL_STATUSES,
  GATES,
  type Phase,
  pendingApproval,
  type SagaState,
  stepEventId,
} from './state.js';
import { pollUntil } from './wake.js';

/** Consumer group of the orchestrator: it reads the gates' result events. */
export const ORCHESTRATOR_GROUP = 'orchestrator';

/** Options of {@link Orchestrator}. */
export interface OrchestratorOptions {
  db: Kysely<Database>;
  publisher: Publisher;
  subscriber: Subscriber;
  logger?: Logger;
  /** Resolves `${NAME}` in provider settings. @defaultValue the process environment */
  env?: Lookup;
  /** @defaultValue `.materi` */
  dataDir?: string;
  /** A deployment whose owner has not renewed its lease this long is taken over. @defaultValue 15000 */
  leaseMs?: number;
  /**
   * How often a waiting deploy polls the store; the results inbox is polled at least every second
   * (a local result wakes it at once), cancels every second while a gate waits and at each lease
   * renewal. @defaultValue 200
   */
  pollMs?: number;
  /** @defaultValue 30000 */
  publishRetryMs?: number;
  /** Claim idle time of the result consumer. @defaultValue 30000 */
  claimIdleMs?: number;
  /** Gate results recorded at once by the result consumer. @defaultValue 8 */
  concurrency?: number;
  observer?: SubscriptionObserver;
  /** Replaces stage providers (tests). */
  providerFor?: (stage: PlanStage) => StageProvider | undefined;
  /**
   * The dashboard's address (`MATERI_API_URL`): `approval:requested` links to
   * `<dashboardUrl>/deployments/<id>`. @defaultValue none (the link is empty)
   */
  dashboardUrl?: string;
  /** `MATERI_FREEZE_FILE`: freeze windows besides the plan's, read again at every submit. */
  freezeFile?: string;
  /**
   * The notifier's settings: an open CRITICAL incident it pages for an environment freezes it
   * (stop the line, see incidents.ts). @defaultValue none (no incidents tracked)
   */
  incidentRules?: IncidentRules;
}

/** What a deploy request carries (HTTP body, CLI). */
export interface DeployRequest {
  /** The plan file's text (YAML). */
  planText: string;
  /** Where it came from, for messages (a file path). */
  planSource: string;
  /** Directory for relative paths in provider settings. @defaultValue the current directory */
  baseDir?: string;
  version: string;
  environment?: string;
  vars?: Record<string, string>;
  triggeredBy?: string;
  /** Wait for a busy environment instead of being refused. */
  queue?: boolean;
  /** Deploy into a frozen environment (a freeze window or an open critical incident); needs `overrideReason`. */
  overrideFreeze?: boolean;
  /** Why the freeze is overridden; recorded with the deployment. */
  overrideReason?: string;
  /**
   * Called with the plan's environment once the plan is parsed, before anything is recorded:
   * throws to refuse (the API checks a deployer token limited to other environments).
   */
  authorizeEnvironment?: (environment: string) => void;
}

/** Options of {@link Orchestrator.approve} and {@link Orchestrator.reject}. */
export interface AnswerOptions {
  by?: string;
  comment?: string;
  /** Throws when the caller may not answer this wait (its environment, its approvers' role). */
  authorize?: (wait: { environment: string; gate: string; approvers: string }) => void;
}

/** The orchestrator's view of a deployment (for `materi deploy` progress and the API). */
export interface DeploymentView {
  id: string;
  project: string;
  environment: string;
  version: string;
  previousVersion?: string;
  correlationId: string;
  status: DeploymentStatusName;
  phase: Phase;
  triggeredBy: string;
  /** `deploy`, or `rollback` for a rollback of the environment to an earlier release. */
  kind: 'deploy' | 'rollback';
  reason?: string;
  /** The gate the deployment waits on, with its worker group and since when. */
  blockedOn?: { gate: string; group: string; since: string };
  /** The person the deployment waits for: an approval or a pause (`materi approve <id>`). */
  waitingFor?: {
    kind: 'approval';
    /** `environment`, `stage:<name>` or `health`. */
    gate: string;
    /** Role allowed to answer. */
    approvers: string;
    reason: string;
    since: string;
    /** When it fails as expired if nobody answers. */
    deadline: string;
  };
  /** Set when it was started inside a freeze with `--override-freeze`: what it overrode, why, by whom. */
  freezeOverride?: FreezeOverride;
  state: SagaState;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

type Row = Awaited<ReturnType<Orchestrator['row']>>;

/**
 * Runs deployments: accepts requests (validating the plan, taking the environment's lock), runs
 * each deployment's saga as the single writer of its state, collects the gates' result events
 * from the bus, and takes over deployments whose orchestrator died (lease expired).
 */
export class Orchestrator {
  readonly instanceId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly db: Kysely<Database>;
  private readonly logger: Logger;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly active = new Map<string, { saga: DeploymentSaga; done: Promise<unknown> }>();
  /** Deployments ended by {@link Orchestrator.abandon} whose saga may still be stopping. */
  private readonly abandoned = new Set<string>();
  /** Sagas whose state is being loaded before they run. */
  private readonly launching = new Set<Promise<void>>();
  private readonly results = new EventEmitter();
  private router: Router | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closing = false;

  constructor(private readonly options: OrchestratorOptions) {
    this.db = options.db;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'orchestrator' });
    this.leaseMs = options.leaseMs ?? 15_000;
    this.pollMs = options.pollMs ?? 200;
    this.results.setMaxListeners(0);
  }

  /** Starts reading results, renewing leases and taking over orphaned deployments. */
  async start(): Promise<void> {
    this.router = new Router({
      subscriber: this.options.subscriber,
      publisher: this.options.publisher,
      logger: this.logger,
      observer: this.options.observer,
    });
    this.router.addHandler({
      name: 'orchestrator-results',
      group: ORCHESTRATOR_GROUP,
      types: ['validation:completed', 'dependency:check:completed', 'health:check:completed'],
      concurrency: this.options.concurrency ?? 8,
      claimIdleMs: this.options.claimIdleMs,
      handler: async (event) => {
        if (!event.causationId) return;
        const payload = toJson(resolveEventType(event.type).schema, event.data as never) as JsonObject;
        const inserted = await this.db
          .insertInto('orchestrator_gate_results')
          .values({
            request_event_id: event.causationId,
            deployment_id: event.deploymentId,
            event_id: event.id,
            type: event.type,
            payload: JSON.stringify(payload),
            received_at: Date.now(),
          })
          .onConflict((oc) => oc.column('request_event_id').doNothing())
          .executeTakeFirst();
        // The saga of this process takes the result as it is (no query); a duplicate wakes it to
        // read the first one stored.
        const first = Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1;
        this.results.emit(event.causationId, first ? { eventId: event.id, payload } : undefined);
      },
    });
    if (this.options.incidentRules)
      this.router.addHandler(
        incidentRegistration(this.db, this.options.incidentRules, {
          group: ORCHESTRATOR_GROUP,
          claimIdleMs: this.options.claimIdleMs,
        }),
      );
    // A bad freeze file fails the start, not the first deploy.
    if (this.options.freezeFile) await loadFreezeSettings(this.options.freezeFile);
    await this.router.start();
    const renew = setInterval(() => void this.renewLeases(), Math.max(100, Math.floor(this.leaseMs / 3)));
    const adopt = setInterval(() => void this.adoptOrphans(), Math.max(100, Math.floor(this.leaseMs / 2)));
    this.timers = [renew, adopt];
    await this.adoptOrphans();
  }

  /** Stops taking work; running sagas are left to finish or to be taken over by another instance. */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    for (const timer of this.timers) clearInterval(timer);
    // One deadline for the result consumer and the sagas in flight together.
    const deadline = Date.now() + graceMs;
    await this.router?.close(graceMs);
    while ((this.active.size > 0 || this.launching.size > 0) && Date.now() < deadline) await sleep(50);
  }

  /** Validates and accepts a deployment; its saga starts at once. */
  async submit(request: DeployRequest): Promise<DeploymentView> {
    if (!VERSION_PATTERN.test(request.version)) {
      throw new BadInputError(
        `--version "${request.version}" must match [A-Za-z0-9][A-Za-z0-9._-]* (a tag-safe version)`,
      );
    }
    const id = `dep-${randomBytes(6).toString('hex')}`;
    const plan = this.parse(request, id);
    request.authorizeEnvironment?.(plan.environment);
    const freezeOverride = await this.checkFreeze(plan, request);
    const now = Date.now();
    const previousVersion = await this.previousVersion(plan);
    await this.db
      .insertInto('orchestrator_deployments')
      .values({
        id,
        project: plan.project,
        environment: plan.environment,
        version: request.version,
        previous_version: previousVersion ?? null,
        correlation_id: randomUUID(),
        status: 'PENDING',
        phase: 'queued',
        plan_text: request.planText,
        plan_source: request.planSource,
        plan_base_dir: request.baseDir ?? process.cwd(),
        vars: JSON.stringify(request.vars ?? {}),
        state: coreJson(emptyState()),
        triggered_by: request.triggeredBy ?? 'api',
        owner: this.instanceId,
        lease_until: now + this.leaseMs,
        cancel_requested: 0,
        cancel_rollback: 0,
        cancelled_by: null,
        reason: null,
        created_at: now,
        updated_at: now,
        finished_at: null,
        freeze_override: freezeOverride ? JSON.stringify(freezeOverride) : null,
      })
      .execute();
    const locked = await this.tryLock(plan.project, plan.environment, id);
    if (!locked.ok && !request.queue) {
      await this.db.deleteFrom('orchestrator_deployments').where('id', '=', id).execute();
      throw new ConflictError(
        `environment ${plan.environment} of ${plan.project} is busy with deployment ${locked.holder}; wait for it, cancel it (materi cancel ${locked.holder}), or queue with --queue`,
      );
    }
    this.launch(await this.row(id), plan, locked.ok, emptyState());
    return this.viewOf(await this.row(id));
  }

  /** Stops a running deployment at its next step, optionally rolling back what it deployed. */
  async cancel(id: string, options: { rollback?: boolean; by?: string } = {}): Promise<DeploymentView> {
    const row = await this.row(id);
    if (FINAL_STATUSES.includes(row.status as DeploymentStatusName)) {
      throw new ConflictError(
        `deployment ${id} already ended (${row.status}); use rollback to restore the previous version`,
      );
    }
    await this.db
      .updateTable('orchestrator_deployments')
      .set({
        cancel_requested: 1,
        cancel_rollback: options.rollback ? 1 : 0,
        cancelled_by: options.by ?? 'an operator',
      })
      .where('id', '=', id)
      .execute();
    const local = this.active.get(id);
    if (local) {
      local.saga.cancelledBy = options.by ?? 'an operator';
      local.saga.rollbackOnCancel = options.rollback ?? false;
      local.saga.requestCancel();
    }
    return this.viewOf(await this.row(id));
  }

  /** Lets a deployment that waits for an approval (or a paused one) go on. */
  async approve(id: string, options: AnswerOptions = {}): Promise<DeploymentView> {
    return this.answer(id, 'APPROVED', options);
  }

  /** Stops a deployment that waits for an approval (or a paused one): it fails with the comment. */
  async reject(id: string, options: AnswerOptions = {}): Promise<DeploymentView> {
    return this.answer(id, 'REJECTED', options);
  }

  /**
   * Records the answer to a deployment's wait in the store (the saga may run in another process and
   * polls it), the first answer winning, and wakes a saga of this instance at once.
   */
  private async answer(
    id: string,
    outcome: ApprovalOutcomeName,
    options: AnswerOptions,
  ): Promise<DeploymentView> {
    const row = await this.row(id);
    const waiting = FINAL_STATUSES.includes(row.status as DeploymentStatusName)
      ? undefined
      : pendingApproval(JSON.parse(row.state) as SagaState);
    const verb = outcome === 'APPROVED' ? 'approve' : 'reject';
    // Checked against the very gate answered below, not an earlier read of the deployment.
    options.authorize?.({
      environment: row.environment,
      gate: waiting?.gate ?? '',
      approvers: waiting?.approvers ?? 'deployer',
    });
    if (!waiting)
      throw new ConflictError(
        `deployment ${id} does not wait for an approval (it is ${row.status}, phase ${row.phase}); nothing to ${verb}`,
      );
    if (row.cancel_requested)
      throw new ConflictError(`deployment ${id} is being cancelled; nothing to ${verb}`);
    if (Date.now() >= waiting.deadlineAt)
      throw new ConflictError(
        `the approval of ${waiting.gate} for deployment ${id} expired at ${new Date(waiting.deadlineAt).toISOString()}`,
      );
    const inserted = await this.db
      .insertInto('orchestrator_approvals')
      .values({
        deployment_id: id,
        gate: waiting.gate,
        outcome,
        answered_by: options.by || 'an operator',
        comment: options.comment ?? '',
        answered_at: Date.now(),
      })
      .onConflict((oc) => oc.columns(['deployment_id', 'gate']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) {
      const first = await this.db
        .selectFrom('orchestrator_approvals')
        .selectAll()
        .where('deployment_id', '=', id)
        .where('gate', '=', waiting.gate)
        .executeTakeFirst();
      throw new ConflictError(
        `the approval of ${waiting.gate} for deployment ${id} was already answered: ${first?.outcome ?? 'answered'}${first?.answered_by ? ` by ${first.answered_by}` : ''}`,
      );
    }
    this.results.emit(`approval:${id}:${waiting.gate}`);
    return this.viewOf(await this.row(id));
  }

  /**
   * The fail-safe after a cancel that did not settle (a provider that ignores its abort signal, an
   * event bus that stays down): ends a deployment this instance runs as FAILURE with `reason`,
   * releases its environment and publishes, as far as the bus allows within a second or two,
   * `deployment:failed` and `deployment:completed`, so no record is left RUNNING. The saga, should
   * it go on, finds it no longer owns the row and stops. A deployment that already ended, or that
   * another instance runs, is left as it is. Resolves with its view.
   */
  async abandon(id: string, reason: string): Promise<DeploymentView> {
    const row = await this.row(id);
    if (FINAL_STATUSES.includes(row.status as DeploymentStatusName) || row.owner !== this.instanceId)
      return this.viewOf(row);
    // The row's core state: the stage and event rows stay as they are.
    const state = JSON.parse(row.state) as SagaState;
    const now = Date.now();
    state.failure = { gate: 'cancel', reason };
    const finishedAt = state.finishedAt ?? now;
    state.finishedAt = finishedAt;
    this.abandoned.add(id);
    this.active.get(id)?.saga.requestCancel();
    const ended = await this.db
      .updateTable('orchestrator_deployments')
      .set({
        status: 'FAILURE',
        phase: 'done',
        state: JSON.stringify(state),
        reason,
        owner: null,
        lease_until: 0,
        updated_at: now,
        finished_at: now,
      })
      .where('id', '=', id)
      .where('owner', '=', this.instanceId)
      .where('status', 'in', ['PENDING', 'RUNNING'])
      .executeTakeFirst();
    if (Number(ended.numUpdatedRows) !== 1) return this.viewOf(await this.row(id));
    this.active.delete(id);
    await this.unlock(row);
    this.logger.info({ deployment_id: id, reason }, 'deployment abandoned: its saga did not stop');
    const context = { environment: row.environment, version: row.version, project: row.project };
    const announce = async () => {
      await this.options.publisher.publish({
        id: stepEventId(id, 'failed'),
        type: 'deployment:failed',
        correlationId: row.correlation_id,
        causationId: state.cause ?? '',
        data: { deploymentId: id, reason, failedGate: 'cancel', ...context },
      });
      await this.options.publisher.publish({
        id: stepEventId(id, 'completed:FAILURE'),
        type: 'deployment:completed',
        correlationId: row.correlation_id,
        causationId: stepEventId(id, 'failed'),
        data: {
          deploymentId: id,
          status: DeploymentStatus.FAILURE,
          totalDurationMs: finishedAt - (state.startedAt ?? finishedAt),
          ...context,
        },
      });
    };
    await Promise.race([
      announce().catch((error) =>
        this.logger.warn(
          { err: error, deployment_id: id },
          'cannot publish the end of an abandoned deployment',
        ),
      ),
      sleep(2000),
    ]);
    return this.viewOf(await this.row(id));
  }

  /**
   * Rolls a deployment back: a running one is cancelled with rollback; the environment's current
   * release has its stages restored to the version before it (taking the environment's lock). Any
   * other finished deployment is refused: it no longer runs, so rolling it back would reinstall
   * an older version behind the current one ({@link NotCurrentReleaseError}).
   */
  async rollback(id: string, options: { by?: string; reason?: string } = {}): Promise<DeploymentView> {
    const row = await this.row(id);
    if (!FINAL_STATUSES.includes(row.status as DeploymentStatusName))
      return this.cancel(id, { rollback: true, by: options.by });
    const current = await currentRelease(this.db, row.project, row.environment);
    if (row.status === 'SUCCESS' && current?.deploymentId !== id)
      throw new NotCurrentReleaseError(
        `deployment ${id} (${row.version}) is not the current release of ${row.project} in ${row.environment}: ` +
          (current
            ? `${current.version} is, from deployment ${current.deploymentId}; roll the environment back with: materi rollback ${row.project} --env ${row.environment} [--to VERSION]`
            : 'nothing released there is recorded'),
      );
    if (row.status !== 'SUCCESS')
      throw new ConflictError(
        `deployment ${id} ended ${row.status}; only a successful deployment can be rolled back`,
      );
    const plan = this.parseRow(row);
    const locked = await this.tryLock(row.project, row.environment, id);
    if (!locked.ok)
      throw new ConflictError(
        `environment ${row.environment} of ${row.project} is busy with deployment ${locked.holder}`,
      );
    // Under the lock: a deployment that finished meanwhile may have replaced it.
    const stillCurrent = await currentRelease(this.db, row.project, row.environment);
    if (stillCurrent?.deploymentId !== id) {
      await this.unlock(row);
      throw new NotCurrentReleaseError(
        `deployment ${id} (${row.version}) is no longer the current release of ${row.project} in ${row.environment}: ${stillCurrent?.version ?? 'nothing'} is`,
      );
    }
    const state = await loadSagaState(this.db, row);
    const deployed = Object.entries(state.stages)
      .filter(([, s]) => s.status === 'succeeded')
      .map(([name]) => name);
    state.rollback = {
      reason: options.reason ?? `manual rollback by ${options.by ?? 'an operator'}`,
      stages: deployed,
      startedAt: Date.now(),
      manual: true,
      by: options.by ?? 'an operator',
    };
    const claimed = await this.db
      .updateTable('orchestrator_deployments')
      .set({
        status: 'RUNNING',
        phase: 'rollback',
        state: coreJson(state),
        owner: this.instanceId,
        lease_until: Date.now() + this.leaseMs,
        finished_at: null,
      })
      .where('id', '=', id)
      .where('status', '=', 'SUCCESS')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1)
      throw new ConflictError(`deployment ${id} changed meanwhile; try again`);
    this.launch(await this.row(id), plan, true);
    return this.viewOf(await this.row(id));
  }

  /**
   * Rolls an environment back to an earlier release: `to`, a version that once succeeded there,
   * or else the previous good release (see docs/event-flows.md). Runs as a new deployment of that version (kind
   * `rollback`) with the plan and variables of the deployment that released it: the validation
   * and dependency gates are skipped, the stages and the health gate run, and it is not rolled
   * back automatically. Refused while the environment is busy.
   */
  async rollbackEnvironment(
    project: string,
    environment: string,
    options: { to?: string; by?: string; reason?: string } = {},
  ): Promise<DeploymentView> {
    const current = await currentRelease(this.db, project, environment);
    if (!current)
      throw new NotFoundError(
        `nothing was ever released to ${environment} of ${project}, so there is nothing to roll back`,
      );
    // Newest first; one read serves the choice, the refusal and the plan's source.
    const history = await releaseHistory(this.db, project, environment, 1000);
    let target: Release | undefined;
    if (options.to !== undefined) {
      if (options.to === current.version)
        throw new ConflictError(
          `${project} in ${environment} already runs ${options.to} (deployment ${current.deploymentId})`,
        );
      target = history.find((r) => r.version === options.to);
      if (!target) {
        const known = [...new Set(history.map((r) => r.version))];
        throw new BadInputError(
          `--to ${options.to}: that version never succeeded in ${environment} of ${project}; versions that did: ${known.join(', ')}`,
        );
      }
    } else {
      // The previous good release: not the current version, and not one a rollback replaced
      // (rolling back twice goes further back instead of reinstalling what was rolled away from).
      const seen = new Set([current.version]);
      target = history.find((release, i) => {
        if (i === 0 || seen.has(release.version)) return false;
        seen.add(release.version);
        // Judged by its latest release there: what replaced it was a rollback.
        return history[i - 1]!.kind !== 'rollback';
      });
      if (!target)
        throw new ConflictError(
          `${project} in ${environment} had no release before ${current.version}, so there is nothing to roll back to`,
        );
    }
    // The plan and variables of the deployment that released that version (a manual rollback's
    // entry names the deployment it rolled back, whose plan is the newer one's).
    const version = target.version;
    const released = history.find((r) => r.version === version && r.kind === 'deploy') ?? target;
    const source = await this.row(released.deploymentId);
    const id = `dep-${randomBytes(6).toString('hex')}`;
    const vars = JSON.parse(source.vars) as Record<string, string>;
    const plan = parsePlan(source.plan_text, source.plan_source, {
      version: target.version,
      environment,
      vars,
      deploymentId: id,
      baseDir: source.plan_base_dir,
    });
    const now = Date.now();
    const by = options.by ?? 'an operator';
    await this.db
      .insertInto('orchestrator_deployments')
      .values({
        id,
        project,
        environment,
        version: target.version,
        previous_version: current.version,
        correlation_id: randomUUID(),
        status: 'PENDING',
        phase: 'queued',
        plan_text: source.plan_text,
        plan_source: source.plan_source,
        plan_base_dir: source.plan_base_dir,
        vars: source.vars,
        state: coreJson(emptyState()),
        triggered_by: by,
        owner: this.instanceId,
        lease_until: now + this.leaseMs,
        cancel_requested: 0,
        cancel_rollback: 0,
        cancelled_by: null,
        reason:
          options.reason ??
          `rollback of ${environment} from ${current.version} to ${target.version} by ${by}`,
        created_at: now,
        updated_at: now,
        finished_at: null,
        kind: 'rollback',
      })
      .execute();
    const locked = await this.tryLock(project, environment, id);
    if (!locked.ok) {
      await this.db.deleteFrom('orchestrator_deployments').where('id', '=', id).execute();
      throw new ConflictError(
        `environment ${environment} of ${project} is busy with deployment ${locked.holder}; wait for it or cancel it (materi cancel ${locked.holder})`,
      );
    }
    // Under the lock: a deployment that finished meanwhile changed what runs; decide again.
    if ((await currentRelease(this.db, project, environment))?.deploymentId !== current.deploymentId) {
      await this.unlock({ project, environment, id });
      await this.db.deleteFrom('orchestrator_deployments').where('id', '=', id).execute();
      throw new ConflictError(
        `the current release of ${project} in ${environment} changed while the rollback started; check materi history ${project} --env ${environment} and try again`,
      );
    }
    this.launch(await this.row(id), plan, true, emptyState());
    return this.viewOf(await this.row(id));
  }

  /** The current release of every environment. */
  async environments(): Promise<Release[]> {
    return listEnvironments(this.db);
  }

  /** The releases of a project (one environment, or all), newest first. */
  async history(project: string, environment?: string, limit = 100): Promise<Release[]> {
    return releaseHistory(this.db, project, environment, limit);
  }

  async get(id: string): Promise<DeploymentView> {
    return this.viewOf(await this.row(id));
  }

  async list(limit = 50): Promise<DeploymentView[]> {
    const rows = await this.db
      .selectFrom('orchestrator_deployments')
      .selectAll()
      .orderBy('created_at', 'desc')
      .limit(limit)
      .execute();
    const states = await loadSagaStates(this.db, rows);
    return rows.map((r) => this.view(r, states.get(r.id)!));
  }

  /** Resolves when the deployment reaches a final status (polling the store). */
  async waitFor(id: string, timeoutMs = 3_600_000): Promise<DeploymentView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.get(id);
      if (FINAL_STATUSES.includes(view.status)) return view;
      if (Date.now() > deadline) return view;
      await sleep(this.pollMs);
    }
  }

  // -------------------------------------------------------------------------------------------

  private async row(id: string) {
    const row = await this.db
      .selectFrom('orchestrator_deployments')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new NotFoundError(`no deployment with id ${id}`);
    return row;
  }

  private parse(request: DeployRequest, deploymentId: string): Plan {
    return parsePlan(request.planText, request.planSource, {
      version: request.version,
      environment: request.environment,
      vars: request.vars,
      deploymentId,
      baseDir: request.baseDir,
    });
  }

  /** Refuses a deployment into a frozen environment (see freeze.ts); returns the override to record. */
  private async checkFreeze(plan: Plan, request: DeployRequest): Promise<FreezeOverride | undefined> {
    const settings = this.options.freezeFile ? await loadFreezeSettings(this.options.freezeFile) : undefined;
    return checkFreeze({
      project: plan.project,
      environment: plan.environment,
      windows: [
        ...plan.freeze.map((w) => ({ ...w, source: `plan ${plan.source}` })),
        ...settingsWindowsFor(settings, plan.project),
      ],
      incident: await openIncident(this.db, plan.project, plan.environment),
      override: request.overrideFreeze,
      overrideReason: request.overrideReason,
      by: request.triggeredBy ?? 'api',
      now: Date.now(),
    });
  }

  private parseRow(row: Row): Plan {
    return parsePlan(row.plan_text, row.plan_source, {
      version: row.version,
      environment: row.environment,
      vars: JSON.parse(row.vars) as Record<string, string>,
      deploymentId: row.id,
      baseDir: row.plan_base_dir,
    });
  }

  /** The version of the environment before this deployment: its current release in the ledger. */
  private async previousVersion(plan: Plan): Promise<string | undefined> {
    return (await currentRelease(this.db, plan.project, plan.environment))?.version;
  }

  /** Takes the environment's lock; a lock held by a finished deployment is stale and taken over. */
  private async tryLock(
    project: string,
    environment: string,
    id: string,
  ): Promise<{ ok: true } | { ok: false; holder: string }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const inserted = await this.db
        .insertInto('orchestrator_env_locks')
        .values({ project, environment, deployment_id: id, acquired_at: Date.now() })
        .onConflict((oc) => oc.columns(['project', 'environment']).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return { ok: true };
      const lock = await this.db
        .selectFrom('orchestrator_env_locks')
        .selectAll()
        .where('project', '=', project)
        .where('environment', '=', environment)
        .executeTakeFirst();
      if (!lock) continue;
      if (lock.deployment_id === id) return { ok: true };
      const holder = await this.db
        .selectFrom('orchestrator_deployments')
        .select('status')
        .where('id', '=', lock.deployment_id)
        .executeTakeFirst();
      if (holder && !FINAL_STATUSES.includes(holder.status as DeploymentStatusName))
        return { ok: false, holder: lock.deployment_id };
      await this.db
        .deleteFrom('orchestrator_env_locks')
        .where('project', '=', project)
        .where('environment', '=', environment)
        .where('deployment_id', '=', lock.deployment_id)
        .execute();
    }
    return { ok: false, holder: 'another deployment' };
  }

  /**
   * The ledger's part of a deployment's final write (same transaction): a success makes its
   * version current; a manual rollback of the current release makes the version before it current.
   */
  private async settleRelease(trx: Transaction<Database>, record: SagaRecord): Promise<void> {
    const base = { project: record.project, environment: record.environment, since: Date.now() };
    if (record.status === 'SUCCESS') {
      await recordCurrentRelease(trx, {
        ...base,
        version: record.version,
        deploymentId: record.id,
        kind: record.kind ?? 'deploy',
        triggeredBy: record.triggeredBy,
      });
    } else if (record.status === 'ROLLED_BACK' && record.state.rollback?.manual && record.previousVersion) {
      await recordCurrentRelease(trx, {
        ...base,
        version: record.previousVersion,
        deploymentId: record.id,
        kind: 'rollback',
        triggeredBy: record.state.rollback.by ?? record.triggeredBy,
      });
    }
  }

  private async unlock(row: { project: string; environment: string; id: string }): Promise<void> {
    await this.db
      .deleteFrom('orchestrator_env_locks')
      .where('project', '=', row.project)
      .where('environment', '=', row.environment)
      .where('deployment_id', '=', row.id)
      .execute();
  }

  /** Runs a saga for a row this instance owns. */
  private launch(row: Row, plan: Plan, locked: boolean, fresh?: SagaState): void {
    // A deployment just created has nothing stored beyond its empty state.
    if (fresh) {
      this.run(row, fresh, plan, locked);
      return;
    }
    const started = loadSagaState(this.db, row).then(
      (state) => this.run(row, state, plan, locked),
      // The lease runs out and an instance (this one too) takes the deployment over.
      (error) => this.logger.error({ err: error, deployment_id: row.id }, 'cannot load the deployment state'),
    );
    this.launching.add(started);
    void started.finally(() => this.launching.delete(started));
  }

  /** Runs a saga for a row this instance owns, with its state as stored. */
  private run(row: Row, state: SagaState, plan: Plan, locked: boolean): void {
    const record: SagaRecord = {
      id: row.id,
      project: row.project,
      environment: row.environment,
      version: row.version,
      previousVersion: row.previous_version ?? undefined,
      correlationId: row.correlation_id,
      triggeredBy: row.triggered_by,
      status: row.status as DeploymentStatusName,
      phase: row.phase as Phase,
      state,
      kind: row.kind === 'rollback' ? 'rollback' : 'deploy',
      freezeOverride: row.freeze_override ? (JSON.parse(row.freeze_override) as FreezeOverride) : undefined,
    };
    const saga = new DeploymentSaga(record, plan, {
      db: this.db,
      publisher: this.options.publisher,
      logger: this.logger,
      env: this.options.env ?? planLookup(),
      dataDir: this.options.dataDir ?? '.materi',
      owner: this.instanceId,
      publishRetryMs: this.options.publishRetryMs,
      providerFor: this.options.providerFor,
      awaitResult: (requestId, deadlineAt, signal) => this.awaitResult(row.id, requestId, deadlineAt, signal),
      awaitApproval: (gate, deadlineAt, signal) => this.awaitApproval(row.id, gate, deadlineAt, signal),
      dashboardUrl: this.options.dashboardUrl,
      onFinal: (trx, sagaRecord) => this.settleRelease(trx, sagaRecord),
    });
    if (row.cancel_requested) {
      saga.cancelledBy = row.cancelled_by ?? undefined;
      saga.rollbackOnCancel = row.cancel_rollback === 1;
      saga.requestCancel();
    }
    const done = (async () => {
      try {
        if (!locked) await this.waitForLock(row, saga);
        if (!record.state.started) await this.refreshPreviousVersion(record);
        const status = await saga.run();
        this.logger.info({ deployment_id: row.id, status }, 'deployment finished');
        await this.unlock(row);
      } catch (error) {
        if (error instanceof LostOwnershipError) {
          if (this.abandoned.delete(row.id)) {
            // Ended by abandon(): nothing to say.
          } else if (this.closing)
            this.logger.info(
              { deployment_id: row.id },
              'orchestrator closing: the deployment is left to the next instance, which takes it over',
            );
          else this.logger.warn({ deployment_id: row.id }, error.message);
        } else this.logger.error({ err: error, deployment_id: row.id }, 'deployment saga crashed');
      } finally {
        this.active.delete(row.id);
      }
    })();
    this.active.set(row.id, { saga, done });
  }

  /**
   * Before a deployment starts (it holds its environment's lock now), its previous version is what
   * runs at this moment: a deployment that ended while this one queued may have changed it.
   */
  private async refreshPreviousVersion(record: SagaRecord): Promise<void> {
    const current = (await currentRelease(this.db, record.project, record.environment))?.version;
    if (current === record.previousVersion) return;
    record.previousVersion = current;
    await this.db
      .updateTable('orchestrator_deployments')
      .set({ previous_version: current ?? null })
      .where('id', '=', record.id)
      .where('owner', '=', this.instanceId)
      .execute();
  }

  /** A queued deployment waits for its environment (or a cancel). */
  private async waitForLock(row: Row, saga: DeploymentSaga): Promise<void> {
    for (;;) {
      const fresh = await this.row(row.id);
      if (fresh.cancel_requested) {
        saga.requestCancel();
        return;
      }
      const locked = await this.tryLock(row.project, row.environment, row.id);
      if (locked.ok) return;
      await sleep(Math.max(this.pollMs, 500));
    }
  }

  /** Polls the results inbox (woken at once by the local result handler) until the deadline. */
  private async awaitResult(
    deploymentId: string,
    requestId: string,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<{ eventId: string; payload: JsonObject } | undefined> {
    return pollUntil({
      query: async () => {
        const found = await this.db
          .selectFrom('orchestrator_gate_results')
          .select(['payload', 'event_id'])
          .where('request_event_id', '=', requestId)
          .executeTakeFirst();
        return found
          ? { eventId: found.event_id, payload: JSON.parse(found.payload) as JsonObject }
          : undefined;
      },
      events: this.results,
      key: requestId,
      deadlineAt,
      signal,
      pollMs: Math.max(this.pollMs, 1000),
      between: () => this.checkCancel([deploymentId]),
    });
  }

  /**
   * Waits for the answer to a deployment's wait for a person: polls the store every second (the
   * API may run in another process; a local answer wakes it at once). At the deadline it writes the
   * expiry as the answer — the first answer wins, so a last-moment approval and the expiry never
   * both count. Resolves undefined only when `signal` aborts (a cancel). A wait can last hours: a
   * failing poll is retried rather than failing the deployment, and an instance that closes leaves
   * the wait to the one that takes the deployment over.
   */
  private async awaitApproval(
    id: string,
    gate: string,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<{ outcome: ApprovalOutcomeName; by: string; comment: string; answeredAt: number } | undefined> {
    const key = `approval:${id}:${gate}`;
    for (;;) {
      if (this.closing) throw new LostOwnershipError(id);
      const found = await this.db
        .selectFrom('orchestrator_approvals')
        .selectAll()
        .where('deployment_id', '=', id)
        .where('gate', '=', gate)
        .executeTakeFirst()
        .catch((error: unknown) => {
          this.logger.warn({ err: error, deployment_id: id, gate }, 'reading the approval failed; retrying');
          return null;
        });
      if (found)
        return {
          outcome: found.outcome as ApprovalOutcomeName,
          by: found.answered_by,
          comment: found.comment,
          answeredAt: Number(found.answered_at),
        };
      if (signal.aborted) return undefined;
      if (Date.now() >= deadlineAt && found === undefined) {
        const recorded = await this.db
          .insertInto('orchestrator_approvals')
          .values({
            deployment_id: id,
            gate,
            outcome: 'EXPIRED',
            answered_by: '',
            comment: '',
            answered_at: Date.now(),
          })
          .onConflict((oc) => oc.columns(['deployment_id', 'gate']).doNothing())
          .execute()
          .then(
            () => true,
            (error: unknown) => {
              this.logger.warn(
                { err: error, deployment_id: id, gate },
                'recording the expiry failed; retrying',
              );
              return false;
            },
          );
        if (recorded) continue;
      }
      // After a failed query, wait a second; else until the next poll or the deadline.
      const delay = found === null ? 1000 : Math.min(1000, Math.max(1, deadlineAt - Date.now()));
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.results.off(key, wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        const timer = setTimeout(wake, delay);
        this.results.once(key, wake);
        signal.addEventListener('abort', wake, { once: true });
      });
      await this.checkCancel([id]).catch(() => {});
    }
  }

  /**
   * Notices a cancel written by another process (the API may run elsewhere): one query for every
   * deployment this instance runs.
   */
  /**
   * Notices cancels written by another process. A waiting saga checks its own deployment after
   * each wait (one row by key); the lease renewal checks every deployment of this instance. A saga
   * must never check them all: with hundreds waiting that is quadratic work.
   */
  private async checkCancel(ids: readonly string[] = [...this.active.keys()]): Promise<void> {
    if (ids.length === 0) return;
    const rows = await this.db
      .selectFrom('orchestrator_deployments')
      .select(['id', 'cancel_rollback', 'cancelled_by'])
      .where('id', 'in', ids)
      .where('cancel_requested', '=', 1)
      .execute();
    for (const row of rows) {
      const saga = this.active.get(row.id)?.saga;
      if (!saga) continue;
      saga.cancelledBy = row.cancelled_by ?? undefined;
      saga.rollbackOnCancel = row.cancel_rollback === 1;
      saga.requestCancel();
    }
  }

  private async renewLeases(): Promise<void> {
    if (this.active.size === 0) return;
    try {
      await this.db
        .updateTable('orchestrator_deployments')
        .set({ lease_until: Date.now() + this.leaseMs })
        .where('id', 'in', [...this.active.keys()])
        .where('owner', '=', this.instanceId)
        .execute();
      await this.checkCancel();
    } catch (error) {
      this.logger.warn({ err: error }, 'renewing deployment leases failed');
    }
  }

  /** Takes over deployments whose owner stopped renewing its lease (crashed or cut off). */
  private async adoptOrphans(): Promise<void> {
    if (this.closing) return;
    try {
      const now = Date.now();
      const orphans = await this.db
        .selectFrom('orchestrator_deployments')
        .select('id')
        .where('status', 'in', ['PENDING', 'RUNNING'])
        .where('lease_until', '<', now)
        .execute();
      for (const { id } of orphans) {
        if (this.active.has(id)) continue;
        const taken = await this.db
          .updateTable('orchestrator_deployments')
          .set({ owner: this.instanceId, lease_until: now + this.leaseMs })
          .where('id', '=', id)
          .where('lease_until', '<', now)
          .where('status', 'in', ['PENDING', 'RUNNING'])
          .executeTakeFirst();
        if (Number(taken.numUpdatedRows) !== 1) continue;
        const row = await this.row(id);
        this.logger.warn(
          { deployment_id: id, phase: row.phase },
          'taking over a deployment whose orchestrator stopped',
        );
        try {
          const plan = this.parseRow(row);
          const lock = await this.tryLock(row.project, row.environment, id);
          this.launch(row, plan, lock.ok);
        } catch (error) {
          this.logger.error({ err: error, deployment_id: id }, 'cannot resume deployment');
        }
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'looking for orphaned deployments failed');
    }
  }

  /** The view of a deployment row, with its whole state. */
  private async viewOf(row: Row): Promise<DeploymentView> {
    return this.view(row, await loadSagaState(this.db, row));
  }

  private view(row: Row, state: SagaState): DeploymentView {
    const gate = (['bake', 'health', 'dependency', 'validation'] as const).find(
      (g) => state.gates[g] && !state.gates[g]!.completedAt,
    );
    const ended = FINAL_STATUSES.includes(row.status as DeploymentStatusName);
    const waiting = gate && !ended ? state.gates[gate]! : undefined;
    const approval = ended ? undefined : pendingApproval(state);
    return {
      id: row.id,
      project: row.project,
      environment: row.environment,
      version: row.version,
      previousVersion: row.previous_version ?? undefined,
      correlationId: row.correlation_id,
      status: row.status as DeploymentStatusName,
      phase: row.phase as Phase,
      triggeredBy: row.triggered_by,
      kind: row.kind === 'rollback' ? 'rollback' : 'deploy',
      reason: state.failure?.reason ?? row.reason ?? undefined,
      blockedOn:
        waiting && gate
          ? { gate, group: GATES[gate].group, since: new Date(waiting.requestedAt).toISOString() }
          : undefined,
      waitingFor: approval
        ? {
            kind: 'approval',
            gate: approval.gate,
            approvers: approval.approvers,
            reason: approval.reason,
            since: new Date(approval.requestedAt).toISOString(),
            deadline: new Date(approval.deadlineAt).toISOString(),
          }
        : undefined,
      freezeOverride: row.freeze_override ? (JSON.parse(row.freeze_override) as FreezeOverride) : undefined,
      state,
      createdAt: new Date(Number(row.created_at)).toISOString(),
      updatedAt: new Date(Number(row.updated_at)).toISOString(),
      finishedAt: row.finished_at ? new Date(Number(row.finished_at)).toISOString() : undefined,
    };
  }
}
