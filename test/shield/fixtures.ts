import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { prepareEvent } from '../../src/bus/outgoing.js';
import type { OutgoingEvent } from '../../src/bus/types.js';
import type { DeploymentEvent } from '../../src/events/envelope.js';
import {
  type ApprovalOutcome,
  CheckStatus,
  DependencyCheckResult,
  DeploymentStatus,
  ExecutionStatus,
  HealthCheckPurpose,
  HealthStatus,
  NotificationOutcome,
  ValidationResult,
} from '../../src/events/index.js';
import { ORCHESTRATOR_SOURCE } from '../../src/events/sources.js';

/**
 * Who publishes what: the orchestrator everything but the gate results and notifications, which
 * come from the workers (named here as `materi worker <name>` processes name them).
 */
const SOURCES: Record<string, string> = {
  'validation:completed': 'materi/worker-validator',
  'dependency:check:completed': 'materi/worker-dependency-checker',
  'health:check:completed': 'materi/worker-health-monitor',
  'notification:sent': 'materi/worker-notifier',
};

export interface ScenarioOptions {
  id?: string;
  correlationId?: string;
  /** Time of `deployment:started`. */
  start?: Date;
  outcome?: 'success' | 'rollback';
  version?: string;
  environment?: string;
  project?: string;
  services?: string[];
  /** Description of the first stage (an XSS payload in the dashboard test). */
  description?: string;
  /** Why the health gate failed (the monitor's reason), with `outcome: 'rollback'`. */
  healthReason?: string;
  /** Reason of the failure and rollback. @defaultValue `health gate: <healthReason>`, as the orchestrator writes it */
  reason?: string;
}

/** Health probes of a window: latency rising over time, some failures when unhealthy. */
export function healthSamples(count: number, unhealthy: boolean) {
  return Array.from({ length: count }, (_, i) => ({
    offsetMs: i * 500,
    latencyMs: 40 + i * (unhealthy ? 30 : 2),
    ok: !(unhealthy && i % 3 === 2),
    endpoint: i % 2 === 0 ? 'health' : 'ready',
  }));
}

/**
 * Every event of one deployment as the orchestrator and its workers publish them: started,
 * validation and dependency gates, three stages, the health gate, a notification, then completed —
 * or, with `outcome: 'rollback'`, an unhealthy health gate, a failure, a rollback and completed
 * ROLLED_BACK. Ids, times, correlation and causation are fixed, so the events can be published in
 * any order.
 */
export function deploymentScenario(options: ScenarioOptions = {}): OutgoingEvent[] {
  const id = options.id ?? `dep-${randomUUID().slice(0, 8)}`;
  const correlationId = options.correlationId ?? randomUUID();
  const start = (options.start ?? new Date('2026-03-01T10:00:00.000Z')).getTime();
  const version = options.version ?? 'v1.4.2';
  const environment = options.environment ?? 'production';
  const project = options.project ?? 'printery';
  const services = options.services ?? ['api', 'web'];
  const rollback = options.outcome === 'rollback';
  const healthReason = options.healthReason ?? 'api unhealthy: error rate 0.33 over 0.05';
  const stages = ['build', 'api', 'web'];
  const events: OutgoingEvent[] = [];
  const at = (ms: number) => new Date(start + ms);
  const add = (type: string, ms: number, data: Record<string, unknown>, causationId = '') => {
    const event: OutgoingEvent = {
      id: randomUUID(),
      type,
      time: at(ms),
      correlationId,
      causationId,
      deploymentId: id,
      source: SOURCES[type] ?? ORCHESTRATOR_SOURCE,
      data: { deploymentId: id, ...data },
    };
    events.push(event);
    return event.id!;
  };

  const startedId = add('deployment:started', 0, {
    version,
    environment,
    strategy: 'rolling',
    services,
    project,
    triggeredBy: 'ci:pipeline-42',
    previousVersion: 'v1.4.1',
    stages,
  });
  const validation = add('validation:started', 100, { version, environment, deadlineSeconds: 60 }, startedId);
  add(
    'validation:completed',
    400,
    {
      result: ValidationResult.PASSED,
      executionStatus: ExecutionStatus.SUCCEEDED,
      durationMs: 300,
      message: 'all checks passed',
      checks: [
        {
          name: 'image:api',
          kind: 'image',
          status: CheckStatus.PASSED,
          message: 'tag found',
          durationMs: 120,
        },
        { name: 'env:DATABASE_URL', kind: 'env', status: CheckStatus.PASSED, message: 'set', durationMs: 1 },
      ],
    },
    validation,
  );
  const dependency = add('dependency:check:started', 500, { environment, deadlineSeconds: 30 }, startedId);
  add(
    'dependency:check:completed',
    900,
    {
      result: DependencyCheckResult.ALL_HEALTHY,
      executionStatus: ExecutionStatus.SUCCEEDED,
      durationMs: 400,
      dependencies: [
        {
          name: 'postgres-main',
          type: 'postgres',
          healthy: true,
          latencyMs: 12,
          critical: true,
          attempts: 1,
          service: 'api',
          message: 'select 1 ok',
        },
      ],
    },
    dependency,
  );
  const stageWindows: Record<string, [number, number]> = {
    build: [1000, 3000],
    api: [3100, 5000],
    web: [5100, 7000],
  };
  for (const stage of stages) {
    const [from, to] = stageWindows[stage]!;
    const stageServices = stage === 'build' ? [] : [stage];
    add(`deployment:stage:${stage}:started`, from, {
      stage,
      description: stage === 'build' ? (options.description ?? 'build the images') : `deploy ${stage}`,
      services: stageServices,
      provider: 'command',
    });
    add(`deployment:stage:${stage}:completed`, to, {
      stage,
      status: DeploymentStatus.SUCCESS,
      durationMs: to - from,
      services: stageServices,
      artifacts: [{ name: 'log', kind: 'text', value: `${stage} done` }],
    });
  }
  const health = add(
    'health:check:started',
    7100,
    { services, purpose: HealthCheckPurpose.POST_DEPLOY, deadlineSeconds: 120 },
    startedId,
  );
  add(
    'health:check:completed',
    12_000,
    {
      status: rollback ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY,
      rollbackRecommended: rollback,
      reason: rollback ? healthReason : 'all services healthy',
      executionStatus: ExecutionStatus.SUCCEEDED,
      purpose: HealthCheckPurpose.POST_DEPLOY,
      durationMs: 4900,
      services: services.map((service) => ({
        service,
        status: rollback && service === 'api' ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY,
        responseTimeP50Ms: 52,
        responseTimeP95Ms: 88,
        responseTimeMaxMs: 95,
        errorRate: rollback && service === 'api' ? 0.33 : 0,
        sampleCount: 10,
        metricsFlowing: true,
        message: 'probed',
        samples: healthSamples(10, rollback && service === 'api'),
      })),
    },
    health,
  );
  const stageResults = stages.map((stage) => {
    const [from, to] = stageWindows[stage]!;
    return {
      stage,
      status: rollback ? DeploymentStatus.ROLLED_BACK : DeploymentStatus.SUCCESS,
      durationMs: to - from,
      services: stage === 'build' ? [] : [stage],
      startedAt: timestampFromDate(at(from)),
      finishedAt: timestampFromDate(at(to)),
    };
  });
  if (rollback) {
    const reason = options.reason ?? `health gate: ${healthReason}`;
    const failedId = add('deployment:failed', 12_100, {
      reason,
      failedGate: 'health',
      errorDetails: healthReason,
      environment,
      version,
      project,
    });
    add(
      'rollback:initiated',
      12_200,
      {
        previousVersion: 'v1.4.1',
        reason,
        stagesToRollback: ['web', 'api', 'build'],
        environment,
        version,
        project,
      },
      failedId,
    );
    add('rollback:completed', 15_000, {
      status: DeploymentStatus.SUCCESS,
      restoredVersion: 'v1.4.1',
      durationMs: 2800,
      rolledBackServices: services,
      environment,
      version,
      project,
    });
  }
  const completedId = add('deployment:completed', rollback ? 15_100 : 12_100, {
    status: rollback ? DeploymentStatus.ROLLED_BACK : DeploymentStatus.SUCCESS,
    totalDurationMs: rollback ? 15_100 : 12_100,
    stageResults,
    version,
    environment,
    project,
    services,
    metrics: {
      totalDurationMs: rollback ? 15_100 : 12_100,
      stagesTotal: 3,
      stagesSucceeded: 3,
      eventsPublished: 14,
    },
  });
  add(
    'notification:sent',
    rollback ? 15_300 : 12_300,
    {
      channel: 'slack',
      target: '#deploys',
      notifiedEventId: completedId,
      notifiedEventType: 'deployment:completed',
      outcome: NotificationOutcome.SENT,
      message: 'ok',
    },
    completedId,
  );
  return events;
}

/** The events as a subscriber decodes them (envelope filled in, payload checked). */
export function asDeploymentEvents(events: readonly OutgoingEvent[]): DeploymentEvent[] {
  return events.map((e) => prepareEvent(e, { source: 'materi/test', contentType: 'application/json' }).event);
}

/** A deterministic shuffle (mulberry32), so a failing order can be reproduced from its seed. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

export interface ApprovalOptions {
  id: string;
  correlationId: string;
  /** Time of `approval:requested`. */
  at: Date;
  gate?: string;
  approvers?: string;
  reason?: string;
  deadline?: Date;
  url?: string;
  project?: string;
  environment?: string;
  version?: string;
  /** How it ends, after `answerAfterMs`; no `approval:completed` when left out. */
  outcome?: ApprovalOutcome;
  answerAfterMs?: number;
  by?: string;
  comment?: string;
  /** Source of the answer. @defaultValue the orchestrator */
  answerSource?: string;
}

/** A wait for a person as the orchestrator publishes it: `approval:requested`, then its answer. */
export function approvalEvents(options: ApprovalOptions): OutgoingEvent[] {
  const facts = {
    deploymentId: options.id,
    project: options.project ?? 'printery',
    environment: options.environment ?? 'production',
    version: options.version ?? 'v1.4.2',
    gate: options.gate ?? 'environment',
  };
  const requested: OutgoingEvent = {
    id: randomUUID(),
    type: 'approval:requested',
    time: options.at,
    correlationId: options.correlationId,
    deploymentId: options.id,
    source: ORCHESTRATOR_SOURCE,
    data: {
      ...facts,
      approvers: options.approvers ?? 'deployer',
      reason: options.reason ?? 'production needs a second pair of eyes',
      deadline: timestampFromDate(options.deadline ?? new Date(options.at.getTime() + 3_600_000)),
      url: options.url ?? '',
    },
  };
  if (options.outcome === undefined) return [requested];
  const completed: OutgoingEvent = {
    id: randomUUID(),
    type: 'approval:completed',
    time: new Date(options.at.getTime() + (options.answerAfterMs ?? 60_000)),
    correlationId: options.correlationId,
    causationId: requested.id!,
    deploymentId: options.id,
    source: options.answerSource ?? ORCHESTRATOR_SOURCE,
    data: { ...facts, outcome: options.outcome, by: options.by ?? '', comment: options.comment ?? '' },
  };
  return [requested, completed];
}
