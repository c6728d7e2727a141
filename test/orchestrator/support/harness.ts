import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type EventBus, openEventBus } from '../../../src/bus/open.js';
import { Router } from '../../../src/bus/router.js';
import {
  DependencyCheckResult,
  type DeploymentEvent,
  decodeEntry,
  ExecutionStatus,
  HealthStatus,
  ValidationResult,
} from '../../../src/events/index.js';
import { Orchestrator, type OrchestratorOptions } from '../../../src/orchestrator/index.js';
import { loadSettings } from '../../../src/runtime/config.js';
import { silentLogger } from '../../../src/runtime/logging.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { postgresBackend, type TestDatabase } from '../../store/backends.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../../support/redis.js';

export interface GateAnswers {
  /** The health monitor could not run its checks (Keptn's "errored" status). */
  healthErrored?: boolean;
  /** The verdict of the bake-period check (purpose BAKE), when it differs from `health`. */
  bake?: HealthStatus;
  validation?: ValidationResult | 'silent';
  dependency?: DependencyCheckResult | 'silent';
  health?: HealthStatus | 'silent';
}

/** Real Redis + PostgreSQL, an orchestrator, and test workers that answer gates as told. */
export interface OrchestratorHarness {
  prefix: string;
  env: Record<string, string>;
  bus: EventBus;
  store: Store;
  workdir: string;
  answers: GateAnswers;
  orchestrator(options?: Partial<OrchestratorOptions>): Promise<Orchestrator>;
  /** Every event of the prefix, ordered by time then entry id. */
  events(): Promise<DeploymentEvent[]>;
  close(): Promise<void>;
}

export async function openOrchestratorHarness(): Promise<OrchestratorHarness> {
  const prefix = uniquePrefix('orch');
  const database: TestDatabase = await postgresBackend.create();
  const workdir = await mkdtemp(path.join(tmpdir(), 'materi-orch-'));
  const env = {
    MATERI_REDIS_URL: TEST_REDIS_URL,
    MATERI_STREAM_PREFIX: prefix,
    MATERI_DATABASE_URL: database.databaseUrl!,
    MATERI_DATA_DIR: workdir,
  };
  const logger = silentLogger();
  const settings = loadSettings({ ...process.env, ...env });
  const bus = await openEventBus(settings, {
    logger,
    source: 'materi/orchestrator',
    subscriber: { blockMs: 100, scanIntervalMs: 50, discoveryIntervalMs: 100 },
  });
  const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: workdir, logger });
  const answers: GateAnswers = {};
  const workers = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
  const succeeded = ExecutionStatus.SUCCEEDED;
  workers.addHandler({
    name: 'test-validator',
    group: 'printery-validator',
    types: ['validation:started'],
    handler: async (e, ctx) => {
      if (answers.validation === 'silent') return;
      const result = answers.validation ?? ValidationResult.PASSED;
      await ctx.publisher.publish({
        type: 'validation:completed',
        data: {
          deploymentId: e.deploymentId,
          result,
          executionStatus: succeeded,
          checks:
            result === ValidationResult.FAILED
              ? [
                  {
                    name: 'image:api',
                    kind: 'image',
                    status: 2,
                    message: 'image registry.test/api:v9 not found',
                  },
                ]
              : [{ name: 'image:api', kind: 'image', status: 1, message: 'found' }],
        },
      });
    },
  });
  workers.addHandler({
    name: 'test-dependency-checker',
    group: 'printery-dependency-checker',
    types: ['dependency:check:started'],
    handler: async (e, ctx) => {
      if (answers.dependency === 'silent') return;
      await ctx.publisher.publish({
        type: 'dependency:check:completed',
        data: {
          deploymentId: e.deploymentId,
          result: answers.dependency ?? DependencyCheckResult.ALL_HEALTHY,
          executionStatus: succeeded,
        },
      });
    },
  });
  workers.addHandler({
    name: 'test-health-monitor',
    group: 'printery-health-monitor',
    types: ['health:check:started'],
    handler: async (e, ctx) => {
      if (answers.health === 'silent') return;
      const baking = (e.data as { purpose?: number }).purpose === 2;
      const status = (baking ? answers.bake : undefined) ?? answers.health ?? HealthStatus.HEALTHY;
      await ctx.publisher.publish({
        type: 'health:check:completed',
        data: {
          deploymentId: e.deploymentId,
          status,
          rollbackRecommended: status === HealthStatus.UNHEALTHY,
          reason: answers.healthErrored
            ? 'invalid health spec: thresholds.p95Ms: expected a number'
            : status === HealthStatus.UNHEALTHY
              ? 'api: error rate 45% over 20%'
              : 'all services healthy',
          executionStatus: answers.healthErrored ? ExecutionStatus.ERRORED : succeeded,
        },
      });
    },
  });
  await workers.start();
  const orchestrators: Orchestrator[] = [];
  return {
    prefix,
    env,
    bus,
    store,
    workdir,
    answers,
    async orchestrator(options = {}) {
      const orchestrator = new Orchestrator({
        db: store.db,
        publisher: bus.publisher,
        subscriber: bus.subscriber,
        logger,
        dataDir: workdir,
        leaseMs: 1500,
        pollMs: 50,
        claimIdleMs: 2000,
        ...options,
      });
      await orchestrator.start();
      orchestrators.push(orchestrator);
      return orchestrator;
    },
    async events() {
      const redis = testRedis();
      try {
        const types = await redis.smembers(`${prefix}:registry:streams`);
        const all: { event: DeploymentEvent; id: string }[] = [];
        for (const type of types) {
          for (const [id, fields] of await redis.xrange(`${prefix}:${type}`, '-', '+'))
            all.push({ event: decodeEntry(fields), id });
        }
        return all
          .sort((a, b) => a.event.time.getTime() - b.event.time.getTime() || a.id.localeCompare(b.id))
          .map((x) => x.event);
      } finally {
        await redis.quit();
      }
    },
    async close() {
      await Promise.all(orchestrators.map((o) => o.close(500)));
      await workers.close(200);
      await bus.close();
      await store.close();
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      await redis.quit();
      await database.drop();
      await rm(workdir, { recursive: true, force: true });
    },
  };
}

/** A plan whose stages run shell commands that append to a log file. */
export function commandPlan(options: {
  log: string;
  /** `health.bake`, e.g. `2s`. */
  bake?: string;
  stages?: { name: string; dependsOn?: string[]; deploy?: string; timeout?: string }[];
  validationTimeout?: string;
  rollback?: boolean;
}): string {
  const stages = options.stages ?? [
    { name: 'railway' },
    { name: 'vercel', dependsOn: ['railway'] },
    { name: 'folio', dependsOn: ['railway'] },
  ];
  const lines = [
    'project: shop',
    'environment: staging',
    'services:',
    // The test health monitor answers without probing; the URL only puts the service in the health gate.
    ...stages.map((s) => `  ${s.name}-svc: { health: "http://127.0.0.1:9/health" }`),
    'stages:',
    ...stages.flatMap((s) => [
      `  - name: ${s.name}`,
      `    services: [${s.name}-svc]`,
      ...(s.dependsOn ? [`    dependsOn: [${s.dependsOn.join(', ')}]`] : []),
      `    timeout: ${s.timeout ?? '20s'}`,
      '    provider:',
      '      type: command',
      `      deploy: ${JSON.stringify(s.deploy ?? `echo "deploy ${s.name} $MATERI_VERSION" >> ${options.log}`)}`,
      `      rollback: ${JSON.stringify(`echo "rollback ${s.name} $MATERI_VERSION" >> ${options.log}`)}`,
    ]),
    `validation: { timeout: ${options.validationTimeout ?? '20s'}, checkTimeout: 500ms }`,
    'dependencies: { timeout: 20s, checkTimeout: 500ms }',
    `health: { interval: 200ms, duration: 1s, timeout: 20s${options.bake ? `, bake: ${options.bake}` : ''} }`,
    `rollback: { automatic: ${options.rollback ?? true} }`,
  ];
  return `${lines.join('\n')}\n`;
}
