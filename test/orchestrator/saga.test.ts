import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/errors/index.js';
import { HealthStatus, ValidationResult } from '../../src/events/index.js';
import { runCli } from '../support/cli.js';
import { eventually } from '../support/redis.js';
import { commandPlan, type OrchestratorHarness, openOrchestratorHarness } from './support/harness.js';

let h: OrchestratorHarness;
let log: string;

beforeEach(async () => {
  h = await openOrchestratorHarness();
  log = path.join(h.workdir, 'actions.log');
  await writeFile(log, '');
});
afterEach(async () => {
  await h.close();
});

const lines = async () => (await readFile(log, 'utf8')).trim().split('\n').filter(Boolean);

describe('deployment saga', () => {
  it('publishes every event of the flow in order, with one correlation id and a causation chain', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({
      planText: commandPlan({ log }),
      planSource: 'plan.yaml',
      version: 'v2',
      triggeredBy: 'ana',
    });
    const done = await orchestrator.waitFor(submitted.id, 30_000);
    expect(done.status).toBe('SUCCESS');
    const events = (await h.events()).filter((e) => e.deploymentId === submitted.id);
    const types = events.map((e) => e.type);
    expect(types.slice(0, 5)).toEqual([
      'deployment:started',
      'validation:started',
      'validation:completed',
      'dependency:check:started',
      'dependency:check:completed',
    ]);
    expect(types.slice(5, 7)).toEqual([
      'deployment:stage:railway:started',
      'deployment:stage:railway:completed',
    ]);
    expect(types.slice(7, 11).sort()).toEqual([
      'deployment:stage:folio:completed',
      'deployment:stage:folio:started',
      'deployment:stage:vercel:completed',
      'deployment:stage:vercel:started',
    ]);
    expect(types.slice(11)).toEqual([
      'health:check:started',
      'health:check:completed',
      'deployment:completed',
    ]);
    expect(new Set(events.map((e) => e.correlationId))).toEqual(new Set([submitted.correlationId]));
    const byId = new Map(events.map((e) => [e.id, e]));
    const started = events[0]!;
    expect(started.causationId).toBe('');
    for (const event of events.slice(1))
      expect(byId.has(event.causationId), `${event.type} has a known cause`).toBe(true);
    expect(byId.get(events[1]!.causationId)!.type).toBe('deployment:started');
    expect(byId.get(events[3]!.causationId)!.type).toBe('validation:completed');
    expect(started.data).toMatchObject({
      version: 'v2',
      environment: 'staging',
      triggeredBy: 'ana',
      project: 'shop',
    });
    expect(events.at(-1)!.data).toMatchObject({ status: 3, metrics: { stagesTotal: 3, stagesSucceeded: 3 } });
    expect(await lines()).toEqual(
      expect.arrayContaining(['deploy railway v2', 'deploy vercel v2', 'deploy folio v2']),
    );
    expect((await lines())[0]).toBe('deploy railway v2');
  });

  it('rolls back the completed stages in reverse order when a stage fails', async () => {
    const orchestrator = await h.orchestrator();
    const first = await orchestrator.submit({
      planText: commandPlan({ log }),
      planSource: 'plan.yaml',
      version: 'v1',
    });
    expect((await orchestrator.waitFor(first.id, 30_000)).status).toBe('SUCCESS');
    await writeFile(log, '');
    const plan = commandPlan({
      log,
      stages: [
        { name: 'railway' },
        { name: 'vercel', dependsOn: ['railway'] },
        { name: 'folio', dependsOn: ['vercel'], deploy: 'echo "disk full" >&2; exit 3' },
      ],
    });
    const second = await orchestrator.submit({ planText: plan, planSource: 'plan.yaml', version: 'v2' });
    const done = await orchestrator.waitFor(second.id, 30_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.previousVersion).toBe('v1');
    expect(await lines()).toEqual([
      'deploy railway v2',
      'deploy vercel v2',
      'rollback vercel v1',
      'rollback railway v1',
    ]);
    const events = (await h.events()).filter((e) => e.deploymentId === second.id);
    const failed = events.find((e) => e.type === 'deployment:failed')!;
    expect(failed.priority).toBe('CRITICAL');
    expect(failed.data).toMatchObject({ failedStage: 'folio', failedGate: 'stage' });
    expect((failed.data as { reason: string }).reason).toContain(
      'stage folio failed: command exited with code 3',
    );
    expect(events.find((e) => e.type === 'rollback:initiated')!.data).toMatchObject({
      stagesToRollback: ['vercel', 'railway'],
      previousVersion: 'v1',
    });
    expect(events.find((e) => e.type === 'rollback:completed')!.data).toMatchObject({
      restoredVersion: 'v1',
      status: 3,
    });
    expect(events.at(-1)).toMatchObject({ type: 'deployment:completed', data: { status: 5 } });
  });

  it('rolls back everything when the health gate finds the services unhealthy', async () => {
    const orchestrator = await h.orchestrator();
    expect(
      (
        await orchestrator.waitFor(
          (
            await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v1' })
          ).id,
        )
      ).status,
    ).toBe('SUCCESS');
    h.answers.health = HealthStatus.UNHEALTHY;
    const bad = await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v2' });
    const done = await orchestrator.waitFor(bad.id, 30_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toBe('health gate: api: error rate 45% over 20%');
  });

  it('keeps watching during the bake period and rolls back when the services go bad in it', async () => {
    const orchestrator = await h.orchestrator();
    await orchestrator.waitFor(
      (await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v1' })).id,
    );
    h.answers.bake = HealthStatus.UNHEALTHY;
    const baked = await orchestrator.submit({
      planText: commandPlan({ log, bake: '2s' }),
      planSource: 'p',
      version: 'v2',
    });
    const done = await orchestrator.waitFor(baked.id, 30_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toBe('bake period: api: error rate 45% over 20%');
    const requests = (await h.events()).filter(
      (e) => e.deploymentId === baked.id && e.type === 'health:check:started',
    );
    expect(requests.map((e) => (e.data as { purpose: number }).purpose)).toEqual([1, 2]);
    expect(done.state.gates.health?.verdict).toBe('HEALTHY');
  });

  it('fails and rolls back when the health monitor could not run its checks (errored, not healthy)', async () => {
    const orchestrator = await h.orchestrator();
    await orchestrator.waitFor(
      (await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v1' })).id,
    );
    h.answers.healthErrored = true;
    const done = await orchestrator.waitFor(
      (await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v2' })).id,
    );
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toBe(
      'health gate: printery-health-monitor could not run its checks: invalid health spec: thresholds.p95Ms: expected a number',
    );
  });

  it('fails a gate whose worker never answers at its deadline, naming the gate and the silent group', async () => {
    h.answers.validation = 'silent';
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({
      planText: commandPlan({ log, validationTimeout: '1s' }),
      planSource: 'p',
      version: 'v1',
    });
    const done = await orchestrator.waitFor(submitted.id, 15_000);
    expect(done.status).toBe('FAILURE');
    expect(done.reason).toMatch(
      /^validation gate: no validation:completed from printery-validator within 1 s/,
    );
    expect(await lines()).toEqual([]);
  });

  it('fails without deploying anything when validation fails', async () => {
    h.answers.validation = ValidationResult.FAILED;
    const orchestrator = await h.orchestrator();
    const done = await orchestrator.waitFor(
      (await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v9' })).id,
    );
    expect(done.status).toBe('FAILURE');
    expect(done.reason).toBe('validation gate: image:api: image registry.test/api:v9 not found');
    expect(await lines()).toEqual([]);
  });

  it('refuses a second deployment to a busy environment, and queues it when asked', async () => {
    const orchestrator = await h.orchestrator();
    const slow = commandPlan({
      log,
      stages: [{ name: 'railway', deploy: `sleep 1; echo "deploy railway $MATERI_VERSION" >> ${log}` }],
    });
    const first = await orchestrator.submit({ planText: slow, planSource: 'p', version: 'v1' });
    const refused = await orchestrator
      .submit({ planText: slow, planSource: 'p', version: 'v2' })
      .catch((e) => e);
    expect(refused).toBeInstanceOf(ConflictError);
    expect(refused.message).toContain(`environment staging of shop is busy with deployment ${first.id}`);
    const queued = await orchestrator.submit({ planText: slow, planSource: 'p', version: 'v3', queue: true });
    expect((await orchestrator.waitFor(first.id)).status).toBe('SUCCESS');
    expect((await orchestrator.waitFor(queued.id)).status).toBe('SUCCESS');
    expect(await lines()).toEqual(['deploy railway v1', 'deploy railway v3']);
  });

  it('cancels a running deployment and rolls back what it deployed', async () => {
    const orchestrator = await h.orchestrator();
    await orchestrator.waitFor(
      (await orchestrator.submit({ planText: commandPlan({ log }), planSource: 'p', version: 'v1' })).id,
    );
    await writeFile(log, '');
    const plan = commandPlan({
      log,
      stages: [{ name: 'railway' }, { name: 'vercel', dependsOn: ['railway'], deploy: 'sleep 30' }],
    });
    const running = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    await eventually(
      async () => (await orchestrator.get(running.id)).state.stages.vercel?.status === 'running',
    );
    await orchestrator.cancel(running.id, { rollback: true, by: 'ana' });
    const done = await orchestrator.waitFor(running.id, 15_000);
    expect(done.status).toBe('CANCELLED');
    expect(await lines()).toEqual(['deploy railway v2', 'rollback railway v1']);
  });

  it('finishes a deployment whose orchestrator was SIGKILLed in the middle of a stage', async () => {
    const plan = commandPlan({
      log,
      stages: [
        { name: 'railway' },
        {
          name: 'vercel',
          dependsOn: ['railway'],
          deploy: `sleep 2; echo "deploy vercel $MATERI_VERSION" >> ${log}`,
        },
      ],
    });
    const planFile = path.join(h.workdir, 'plan.yaml');
    await writeFile(planFile, plan);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/orchestrator/fixtures/orchestrator-process.ts', planFile, 'v1'],
      {
        env: { ...process.env, ...h.env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const id = await new Promise<string>((resolve) =>
      child.stdout.on('data', (d: Buffer) => resolve(d.toString().trim())),
    );
    await eventually(async () => (await readFile(log, 'utf8')).includes('deploy railway v1'), 30_000);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const survivor = await h.orchestrator();
    const done = await survivor.waitFor(id, 30_000);
    expect(['SUCCESS', 'ROLLED_BACK']).toContain(done.status);
    expect(done.status).toBe('SUCCESS');
    const completed = (await h.events()).filter(
      (e) => e.deploymentId === id && e.type === 'deployment:completed',
    );
    expect(completed).toHaveLength(1);
  }, 70_000);
});

describe('materi deploy with a bad plan', () => {
  it('exits with code 2 and the path of the error', async () => {
    const file = path.join(h.workdir, 'bad.yaml');
    await writeFile(
      file,
      'project: shop\nservices: { api: {} }\nstages:\n  - name: api\n    services: [api]\n    provider: { type: heroku }\n',
    );
    const result = await runCli(['deploy', file, '--version', 'v1', '--standalone'], h.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}: stages[0].provider.type`);
  });
});
