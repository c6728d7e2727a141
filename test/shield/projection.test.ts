import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HandlerContext } from '../../src/bus/types.js';
import type { DeploymentEvent } from '../../src/events/envelope.js';
import { ApprovalOutcome, DeploymentStatus, ValidationResult } from '../../src/events/index.js';
import { ORCHESTRATOR_SOURCE } from '../../src/events/sources.js';
import { createLogger, silentLogger } from '../../src/runtime/logging.js';
import {
  createShieldProjection,
  type LoggedEvent,
  recomputeShieldRecords,
  ShieldStore,
  type UnifiedDeployment,
} from '../../src/shield/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { BACKENDS, type TestDatabase } from '../store/backends.js';
import { testHandlerContext } from '../support/handler-context.js';
import {
  type ApprovalOptions,
  approvalEvents,
  asDeploymentEvents,
  deploymentScenario,
  shuffled,
} from './fixtures.js';

const logger = silentLogger();

/** A logger that keeps its lines (parsed) for the test to read. */
function recordingLogger() {
  const lines: { level: number; msg: string; event_id?: string; source?: string }[] = [];
  const destination = { write: (line: string) => lines.push(JSON.parse(line)) };
  return {
    logger: createLogger({ name: 'shield', level: 'debug', destination: destination as never }),
    warnings: () => lines.filter((l) => l.level === 40),
  };
}

function contextFor(event: DeploymentEvent, n: number): HandlerContext {
  return testHandlerContext({
    stream: `materi:events:deployment:${event.type}`,
    entryId: `${1_700_000_000_000 + n}-0`,
    group: 'shield',
    logger,
    publisher: {
      publish: async () => {
        throw new Error('the projection publishes nothing');
      },
      publishBatch: async () => {
        throw new Error('the projection publishes nothing');
      },
      close: async () => {},
    },
  });
}

describe.each(BACKENDS)('Shield projection on $dialect', (backend) => {
  let database: TestDatabase;
  let store: Store;
  let shield: ShieldStore;
  let changes: { record: UnifiedDeployment | undefined; event: LoggedEvent }[];
  let handle: ReturnType<typeof createShieldProjection>;

  beforeAll(async () => {
    database = await backend.create();
    store = await openStore({ databaseUrl: database.databaseUrl, dataDir: database.dataDir, logger });
    shield = new ShieldStore(store.db);
  });
  afterAll(async () => {
    await store.close();
    await database.drop();
  });
  beforeEach(async () => {
    await shield.clear();
    changes = [];
    handle = createShieldProjection({
      db: store.db,
      logger,
      onChange: (record, event) => changes.push({ record, event }),
    });
  });

  async function deliver(events: readonly DeploymentEvent[], concurrency = 1): Promise<void> {
    const queue = events.map((event, i) => ({ event, i }));
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          await handle(next.event, contextFor(next.event, next.i));
        }
      }),
    );
  }

  for (const outcome of ['success', 'rollback'] as const) {
    it(`ends with the same ${outcome} record whatever the order, duplicates and concurrency`, async () => {
      const events = asDeploymentEvents(deploymentScenario({ id: `order-${outcome}`, outcome }));
      await deliver(events);
      const inOrder = await shield.getDeployment(`order-${outcome}`);
      expect(inOrder?.status).toBe(outcome === 'success' ? 'SUCCESS' : 'ROLLED_BACK');
      expect(inOrder?.eventCount).toBe(events.length);

      for (const seed of [1, 2, 3]) {
        await shield.clear();
        // Every event once or twice, shuffled, handled four at a time (as the router does).
        const duplicated = [...events, ...events.filter((_, i) => (i + seed) % 2 === 0)];
        changes = [];
        await deliver(shuffled(duplicated, seed), 4);
        expect(await shield.getDeployment(`order-${outcome}`)).toEqual(inOrder);
        // Listeners never see a record older than one they saw before.
        // (A gate result that comes before any event of the orchestrator has no record to tell.)
        const told = changes.flatMap((c) => (c.record ? [c.record.eventCount] : []));
        expect(told).toEqual([...told].sort((a, b) => a - b));
        expect(changes.at(-1)?.record).toEqual(inOrder);
        expect(await shield.eventCount()).toBe(events.length);
      }
    });
  }

  it('records gates, stages, health samples, notifications and metrics of a successful deployment', async () => {
    const events = asDeploymentEvents(deploymentScenario({ id: 'dep-full', services: ['api', 'web'] }));
    await deliver(events);
    const record = (await shield.getDeployment('dep-full'))!;
    expect(record).toMatchObject({
      id: 'dep-full',
      project: 'printery',
      version: 'v1.4.2',
      environment: 'production',
      strategy: 'rolling',
      services: ['api', 'web'],
      plannedStages: ['build', 'api', 'web'],
      status: 'SUCCESS',
      phase: 'done',
      blockedOn: null,
      triggeredBy: 'ci:pipeline-42',
      previousVersion: 'v1.4.1',
      startedAt: '2026-03-01T10:00:00.000Z',
      finishedAt: '2026-03-01T10:00:12.100Z',
      durationMs: 12_100,
      failure: null,
      rollback: null,
      correlationId: events[0]!.correlationId,
    });
    expect(record.stages.map((s) => [s.stage, s.status, s.startedAt, s.finishedAt, s.durationMs])).toEqual([
      ['build', 'SUCCESS', '2026-03-01T10:00:01.000Z', '2026-03-01T10:00:03.000Z', 2000],
      ['api', 'SUCCESS', '2026-03-01T10:00:03.100Z', '2026-03-01T10:00:05.000Z', 1900],
      ['web', 'SUCCESS', '2026-03-01T10:00:05.100Z', '2026-03-01T10:00:07.000Z', 1900],
    ]);
    expect(record.stages[0]).toMatchObject({
      description: 'build the images',
      provider: 'command',
      artifacts: [{ name: 'log', kind: 'text', value: 'build done' }],
      error: null,
    });
    expect(record.validation).toMatchObject({
      result: 'PASSED',
      executionStatus: 'SUCCEEDED',
      deadlineSeconds: 60,
      durationMs: 300,
      requestedAt: '2026-03-01T10:00:00.100Z',
      completedAt: '2026-03-01T10:00:00.400Z',
    });
    expect(record.validation?.checks.map((c) => [c.name, c.status])).toEqual([
      ['image:api', 'PASSED'],
      ['env:DATABASE_URL', 'PASSED'],
    ]);
    expect(record.dependencies?.dependencies[0]).toMatchObject({
      name: 'postgres-main',
      healthy: true,
      critical: true,
    });
    expect(record.health).toMatchObject({
      purpose: 'POST_DEPLOY',
      status: 'HEALTHY',
      rollbackRecommended: false,
    });
    expect(record.health?.services.map((s) => [s.service, s.samples.length])).toEqual([
      ['api', 10],
      ['web', 10],
    ]);
    expect(record.health?.services[0]?.samples[1]).toEqual({
      offsetMs: 500,
      latencyMs: 42,
      ok: true,
      endpoint: 'ready',
    });
    expect(record.notifications).toEqual([
      expect.objectContaining({ channel: 'slack', target: '#deploys', outcome: 'SENT' }),
    ]);
    expect(record.metrics).toMatchObject({ totalDurationMs: 12_100, stagesTotal: 3 });
  });

  it('records the failure and the rollback of a rolled-back deployment', async () => {
    await deliver(asDeploymentEvents(deploymentScenario({ id: 'dep-rb', outcome: 'rollback' })));
    const record = (await shield.getDeployment('dep-rb'))!;
    expect(record.status).toBe('ROLLED_BACK');
    expect(record.failure).toEqual({
      at: '2026-03-01T10:00:12.100Z',
      reason: 'health gate: api unhealthy: error rate 0.33 over 0.05',
      gate: 'health',
      stage: '',
      details: 'api unhealthy: error rate 0.33 over 0.05',
    });
    expect(record.rollback).toEqual({
      status: 'SUCCESS',
      initiatedAt: '2026-03-01T10:00:12.200Z',
      reason: 'health gate: api unhealthy: error rate 0.33 over 0.05',
      targetVersion: 'v1.4.1',
      stages: ['web', 'api', 'build'],
      completedAt: '2026-03-01T10:00:15.000Z',
      restoredVersion: 'v1.4.1',
      durationMs: 2800,
      rolledBackServices: ['api', 'web'],
      error: null,
    });
    expect(record.stages.map((s) => s.status)).toEqual(['ROLLED_BACK', 'ROLLED_BACK', 'ROLLED_BACK']);
    expect(record.health).toMatchObject({
      status: 'UNHEALTHY',
      reason: 'api unhealthy: error rate 0.33 over 0.05',
      rollbackRecommended: true,
    });
    expect(record.health?.services.find((s) => s.service === 'api')?.errorRate).toBe(0.33);
  });

  it('shows the gate a running deployment waits on, and its phase, as events arrive', async () => {
    const events = asDeploymentEvents(deploymentScenario({ id: 'dep-live' }));
    const byType = (type: string) => events.find((e) => e.type === type)!;
    const step = async (type: string) => {
      await deliver([byType(type)]);
      return (await shield.getDeployment('dep-live'))!;
    };
    expect(await step('deployment:started')).toMatchObject({
      status: 'PENDING',
      phase: 'pending',
      blockedOn: null,
    });
    expect(await step('validation:started')).toMatchObject({
      status: 'RUNNING',
      phase: 'validation',
      blockedOn: {
        gate: 'validation',
        group: 'printery-validator',
        since: '2026-03-01T10:00:00.100Z',
        eventId: byType('validation:started').id,
      },
    });
    expect((await step('validation:completed')).blockedOn).toBeNull();
    expect((await step('dependency:check:started')).blockedOn?.group).toBe('printery-dependency-checker');
    await step('dependency:check:completed');
    const building = await step('deployment:stage:build:started');
    expect(building.phase).toBe('stage:build');
    expect(building.stages.map((s) => [s.stage, s.status])).toEqual([
      ['build', 'RUNNING'],
      ['api', 'PENDING'],
      ['web', 'PENDING'],
    ]);
    expect((await step('deployment:stage:build:completed')).stages[0]?.status).toBe('SUCCESS');
    const health = await step('health:check:started');
    expect(health).toMatchObject({
      phase: 'health',
      blockedOn: { gate: 'health', group: 'printery-health-monitor', since: '2026-03-01T10:00:07.100Z' },
    });
    const healthy = await step('health:check:completed');
    expect(healthy.blockedOn).toBeNull();
    expect(healthy.status).toBe('RUNNING');
    const done = await step('deployment:completed');
    expect(done).toMatchObject({ status: 'SUCCESS', phase: 'done', blockedOn: null });
    // The stages that never reported here take their result from deployment:completed.
    expect(done.stages.map((s) => s.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
  });

  it('keeps the final status when a start event arrives after deployment:completed', async () => {
    const events = asDeploymentEvents(deploymentScenario({ id: 'dep-late' }));
    const lateTypes = new Set(['validation:started', 'health:check:started', 'deployment:stage:web:started']);
    await deliver(events.filter((e) => !lateTypes.has(e.type)));
    await deliver(events.filter((e) => lateTypes.has(e.type)));
    const record = (await shield.getDeployment('dep-late'))!;
    expect(record).toMatchObject({ status: 'SUCCESS', phase: 'done', blockedOn: null });
    expect(record.stages.find((s) => s.stage === 'web')?.status).toBe('SUCCESS');
  });

  it('logs events without a deployment id and builds no record for them', async () => {
    const [alert] = asDeploymentEvents([
      {
        type: 'alert:raised',
        deploymentId: '',
        data: { alert: 'DeadLetterQueueDepth', group: 'printery-notifier', severity: 'critical', value: 12 },
      },
    ]);
    await deliver([alert!, alert!]);
    expect(await shield.eventCount()).toBe(1);
    expect(await shield.loggedDeploymentIds()).toEqual([]);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({
      record: undefined,
      event: { type: 'alert:raised', deploymentId: '' },
    });
    expect(changes[0]?.event.data).toMatchObject({ alert: 'DeadLetterQueueDepth', value: 12 });
  });

  it('tells listeners once per new event, with the record after it', async () => {
    const events = asDeploymentEvents(deploymentScenario({ id: 'dep-notify' }));
    await deliver([...events, ...events]);
    expect(changes).toHaveLength(events.length);
    expect(new Set(changes.map((c) => c.event.id)).size).toBe(events.length);
    expect(changes.map((c) => c.event.seq)).toEqual(
      [...changes.map((c) => c.event.seq)].sort((a, b) => a - b),
    );
    expect(changes.at(-1)?.record?.eventCount).toBe(events.length);
  });

  it('keeps the record the orchestrator built when anyone else publishes its events, and warns', async () => {
    const events = asDeploymentEvents(deploymentScenario({ id: 'dep-forged' }));
    await deliver(events);
    const before = (await shield.getDeployment('dep-forged'))!;
    expect(before.status).toBe('SUCCESS');
    const at = new Date('2026-03-01T10:00:20.000Z');
    const common = { deploymentId: 'dep-forged', correlationId: before.correlationId, time: at };
    const data = { deploymentId: 'dep-forged' };
    // In the order they fold in (one time, lifecycle order).
    const forged = asDeploymentEvents([
      {
        ...common,
        type: 'deployment:stage:web:completed',
        source: 'acme/deployer',
        data: { ...data, stage: 'web', status: DeploymentStatus.FAILURE, errorMessage: 'forged' },
      },
      {
        ...common,
        type: 'deployment:failed',
        source: 'materi/cli',
        data: { ...data, reason: 'forged', failedGate: 'health' },
      },
      { ...common, type: 'rollback:initiated', source: 'materi/cli', data: { ...data, reason: 'forged' } },
      {
        ...common,
        type: 'deployment:completed',
        source: 'materi/cli',
        data: { ...data, status: DeploymentStatus.FAILURE },
      },
    ]);
    const recording = recordingLogger();
    const project = createShieldProjection({ db: store.db, logger: recording.logger });
    for (const [i, event] of forged.entries()) await project(event, contextFor(event, 100 + i));

    const after = (await shield.getDeployment('dep-forged'))!;
    expect(after).toEqual({
      ...before,
      eventCount: events.length + forged.length,
      ignoredEvents: forged.map((e) => ({
        eventId: e.id,
        type: e.type,
        source: e.source,
        code: 'source',
        reason: `${e.type} from "${e.source}": only the orchestrator (materi/orchestrator) moves a deployment`,
      })),
    });
    // Still in the log, in the deployment's timeline, and each one warned about once.
    const timeline = await shield.timeline('dep-forged');
    expect(timeline.map((e) => e.id)).toEqual(expect.arrayContaining(forged.map((e) => e.id)));
    expect(recording.warnings().map((w) => [w.event_id, w.source])).toEqual(
      forged.map((e) => [e.id, e.source]),
    );
    expect(recording.warnings()[1]?.msg).toBe(
      'shield: ignored deployment:failed from "materi/cli": only the orchestrator (materi/orchestrator) ' +
        'moves a deployment; logged, record unchanged',
    );

    // A deployment only others speak of gets no record at all.
    const [ghost] = asDeploymentEvents([
      {
        ...common,
        deploymentId: 'dep-ghost',
        type: 'deployment:completed',
        source: 'materi/cli',
        data: { deploymentId: 'dep-ghost' },
      },
    ]);
    await project(ghost!, contextFor(ghost!, 200));
    expect(await shield.getDeployment('dep-ghost')).toBeUndefined();
    expect((await shield.listEvents({ deploymentId: 'dep-ghost' })).items).toHaveLength(1);
  });

  it("counts a gate result only when it answers the orchestrator's request, and only the first answer", async () => {
    const scenario = deploymentScenario({ id: 'dep-gates' });
    const events = asDeploymentEvents(scenario);
    const byType = (type: string) => events.find((e) => e.type === type)!;
    const request = byType('validation:started');
    const recording = recordingLogger();
    const project = createShieldProjection({ db: store.db, logger: recording.logger });
    let n = 0;
    const step = async (event: DeploymentEvent) => {
      await project(event, contextFor(event, n++));
      return await shield.getDeployment('dep-gates');
    };
    const result = (source: string, causationId: string, verdict: ValidationResult, ms: number) =>
      asDeploymentEvents([
        {
          type: 'validation:completed',
          source,
          deploymentId: 'dep-gates',
          correlationId: request.correlationId,
          causationId,
          time: new Date(request.time.getTime() + ms),
          data: { deploymentId: 'dep-gates', result: verdict },
        },
      ])[0]!;

    // The worker's answer may arrive before the request it answers: counted once the request is in.
    expect(await step(byType('validation:completed'))).toBeUndefined();
    expect((await step(byType('deployment:started')))?.ignoredEvents).toEqual([
      expect.objectContaining({ type: 'validation:completed', code: 'no-request' }),
    ]);
    expect((await step(request))?.validation?.result).toBe('PASSED');
    expect(recording.warnings()).toEqual([]);

    // A result published by hand answers no request; a second answer comes too late.
    const byHand = result('materi/cli', '', ValidationResult.FAILED, 400);
    const second = result('acme/validator', request.id, ValidationResult.FAILED, 500);
    expect((await step(byHand))?.validation?.result).toBe('PASSED');
    const record = (await step(second))!;
    expect(record.validation?.result).toBe('PASSED');
    expect(record.ignoredEvents.map((i) => [i.eventId, i.code])).toEqual([
      [byHand.id, 'no-request'],
      [second.id, 'answered'],
    ]);
    expect(recording.warnings().map((w) => w.event_id)).toEqual([byHand.id, second.id]);

    // A checker of one's own answers a request like the printery workers do.
    const dependencyRequest = byType('dependency:check:started');
    await step(dependencyRequest);
    const own = asDeploymentEvents([
      {
        ...scenario.find((e) => e.type === 'dependency:check:completed')!,
        id: undefined,
        source: 'acme/dependency-checker',
        causationId: dependencyRequest.id,
      },
    ])[0]!;
    const answered = (await step(own))!;
    expect(answered.dependencies?.result).toBe('ALL_HEALTHY');
    expect(answered.blockedOn).toBeNull();
  });

  it('keeps history per environment and service', async () => {
    const plans = [
      { id: 'h-1', environment: 'staging', services: ['api'], start: '2026-03-01T09:00:00Z' },
      { id: 'h-2', environment: 'production', services: ['api', 'web'], start: '2026-03-01T10:00:00Z' },
      { id: 'h-3', environment: 'production', services: ['web'], start: '2026-03-01T11:00:00Z' },
    ];
    for (const p of plans) {
      await deliver(asDeploymentEvents(deploymentScenario({ ...p, start: new Date(p.start) })));
    }
    const ids = async (filter: Parameters<ShieldStore['listDeployments']>[0]) =>
      (await shield.listDeployments(filter)).items.map((d) => d.id);
    expect(await ids({})).toEqual(['h-3', 'h-2', 'h-1']);
    expect(await ids({ environment: 'production' })).toEqual(['h-3', 'h-2']);
    expect(await ids({ service: 'api' })).toEqual(['h-2', 'h-1']);
    expect(await ids({ environment: 'production', service: 'api' })).toEqual(['h-2']);
  });

  describe('when a deployment waits for a person', () => {
    const start = new Date('2026-03-01T10:00:00.000Z');
    const requestedAt = new Date('2026-03-01T10:00:00.950Z');
    const deadline = new Date('2026-03-01T11:00:00.950Z');
    /** The scenario's events up to the dependency gate's answer, then a wait for approval. */
    function waitingDeployment(id: string, approval: Partial<ApprovalOptions> = {}) {
      const scenario = deploymentScenario({ id, start });
      const correlationId = scenario[0]!.correlationId!;
      const before = scenario.filter((e) => e.time!.getTime() - start.getTime() <= 900);
      const after = scenario.filter((e) => e.time!.getTime() - start.getTime() > 900);
      const wait = approvalEvents({
        id,
        correlationId,
        at: requestedAt,
        deadline,
        url: `https://deploy.example/deployments/${id}`,
        answerAfterMs: 50,
        ...approval,
      });
      return { before, wait, after, correlationId };
    }

    it('shows what it waits for while RUNNING, then who answered and how', async () => {
      const { before, wait, after } = waitingDeployment('dep-approve', {
        outcome: ApprovalOutcome.APPROVED,
        by: 'alice',
        comment: 'ship it',
      });
      await deliver(asDeploymentEvents([...before, wait[0]!]));
      const waiting = (await shield.getDeployment('dep-approve'))!;
      const open = {
        eventId: wait[0]!.id,
        gate: 'environment',
        approvers: 'deployer',
        reason: 'production needs a second pair of eyes',
        requestedAt: requestedAt.toISOString(),
        deadline: deadline.toISOString(),
        url: 'https://deploy.example/deployments/dep-approve',
        outcome: null,
        by: null,
        comment: null,
        answeredAt: null,
      };
      expect(waiting).toMatchObject({ status: 'RUNNING', phase: 'approval', blockedOn: null });
      expect(waiting.waitingFor).toEqual(open);
      expect(waiting.approvals).toEqual([open]);
      expect((await shield.listDeployments({ status: ['RUNNING'] })).items[0]?.waitingFor?.gate).toBe(
        'environment',
      );

      await deliver(asDeploymentEvents([wait[1]!]));
      const approved = (await shield.getDeployment('dep-approve'))!;
      const answered = {
        ...open,
        outcome: 'APPROVED',
        by: 'alice',
        comment: 'ship it',
        answeredAt: '2026-03-01T10:00:01.000Z',
      };
      expect(approved).toMatchObject({ status: 'RUNNING', waitingFor: null });
      expect(approved.approvals).toEqual([answered]);

      await deliver(asDeploymentEvents(after));
      const done = (await shield.getDeployment('dep-approve'))!;
      expect(done).toMatchObject({ status: 'SUCCESS', phase: 'done', waitingFor: null });
      expect(done.approvals).toEqual([answered]);

      // Any order gives the same record, and so does recomputing it from the log (a rebuild).
      const all = asDeploymentEvents([...before, ...wait, ...after]);
      await shield.clear();
      await deliver(shuffled(all, 7), 4);
      expect(await shield.getDeployment('dep-approve')).toEqual(done);
      expect(await recomputeShieldRecords({ db: store.db })).toBe(1);
      expect(await shield.getDeployment('dep-approve')).toEqual(done);
    });

    it('records an expired wait on a failed deployment, with nobody as the answer', async () => {
      const { before, wait, correlationId } = waitingDeployment('dep-expired', {
        gate: 'stage:api',
        outcome: ApprovalOutcome.EXPIRED,
        answerAfterMs: 3_600_000,
      });
      const end = asDeploymentEvents([
        {
          type: 'deployment:failed',
          time: new Date(deadline.getTime() + 10),
          correlationId,
          deploymentId: 'dep-expired',
          source: ORCHESTRATOR_SOURCE,
          data: {
            deploymentId: 'dep-expired',
            reason: 'approval of stage:api expired',
            failedGate: 'approval',
          },
        },
        {
          type: 'deployment:completed',
          time: new Date(deadline.getTime() + 20),
          correlationId,
          deploymentId: 'dep-expired',
          source: ORCHESTRATOR_SOURCE,
          data: { deploymentId: 'dep-expired', status: DeploymentStatus.FAILURE },
        },
      ]);
      await deliver([...asDeploymentEvents([...before, ...wait]), ...end]);
      const record = (await shield.getDeployment('dep-expired'))!;
      expect(record).toMatchObject({ status: 'FAILURE', waitingFor: null });
      expect(record.approvals).toMatchObject([
        { gate: 'stage:api', outcome: 'EXPIRED', by: null, answeredAt: deadline.toISOString() },
      ]);
    });

    it('counts approval events only from the orchestrator', async () => {
      const { before, wait } = waitingDeployment('dep-forged-approval', {
        outcome: ApprovalOutcome.APPROVED,
        by: 'mallory',
        answerSource: 'materi/cli',
      });
      await deliver(asDeploymentEvents([...before, ...wait]));
      const record = (await shield.getDeployment('dep-forged-approval'))!;
      expect(record.waitingFor).toMatchObject({ gate: 'environment', outcome: null });
      expect(record.approvals).toHaveLength(1);
      expect(record.ignoredEvents).toEqual([
        {
          eventId: wait[1]!.id,
          type: 'approval:completed',
          source: 'materi/cli',
          code: 'source',
          reason:
            'approval:completed from "materi/cli": only the orchestrator (materi/orchestrator) moves a deployment',
        },
      ]);
    });
  });
});
