/**
 * Approvals and pauses in the saga (real Redis + PostgreSQL): a deployment that waits for a person
 * records the wait, publishes `approval:requested` once, and goes on, fails or expires with a clear
 * reason; a DEGRADED or INCONCLUSIVE health verdict pauses, fails or succeeds as the plan says. The
 * SIGKILL of the orchestrator while a deployment waits is in test/e2e/approval-crash.test.ts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError } from '../../src/errors/index.js';
import { ApprovalOutcome, HealthStatus } from '../../src/events/index.js';
import { Orchestrator } from '../../src/orchestrator/index.js';
import { parsePlan } from '../../src/orchestrator/plan/index.js';
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

/** commandPlan with an environment approval (`approval: {...}` at the top level). */
const gated = (approval = '{ required: true }') => `${commandPlan({ log })}approval: ${approval}\n`;

/** commandPlan with `health.onInconclusive` set. */
const onInconclusive = (policy: string) =>
  commandPlan({ log }).replace(
    'health: { interval: 200ms',
    `health: { onInconclusive: ${policy}, interval: 200ms`,
  );

async function waiting(orchestrator: Orchestrator, id: string) {
  return eventually(async () => {
    const view = await orchestrator.get(id);
    return view.waitingFor ? view : undefined;
  }, 30_000);
}

async function approvalEvents(id: string) {
  const events = (await h.events()).filter((e) => e.deploymentId === id);
  return {
    requested: events.filter((e) => e.type === 'approval:requested'),
    completed: events.filter((e) => e.type === 'approval:completed'),
  };
}

describe('the plan', () => {
  it('reads approval settings with their defaults, on the plan and on a stage', () => {
    const plan = parsePlan(
      [
        'project: shop',
        'approval: { required: true }',
        'services: { api: {} }',
        'stages:',
        '  - { name: api, services: [api], provider: { type: command, deploy: "true" }, approval: { approvers: admin, timeout: 10m } }',
        '',
      ].join('\n'),
      'plan.yaml',
    );
    expect(plan.approval).toEqual({ required: true, approvers: 'deployer', timeoutMs: 3_600_000 });
    expect(plan.stages[0]!.approval).toEqual({ required: true, approvers: 'admin', timeoutMs: 600_000 });
    expect(plan.health.onInconclusive).toBe('pause');
    expect(() =>
      parsePlan(
        'project: shop\nhealth: { onInconclusive: maybe }\nservices: { api: {} }\nstages: [{ name: api, services: [api], provider: { type: command, deploy: "true" } }]\n',
        'plan.yaml',
      ),
    ).toThrow(/health\.onInconclusive/);
  });
});

describe('when a deployment waits for an approval', () => {
  it('waits before the first stage, publishes the request once, and goes on when another instance approves', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({ planText: gated(), planSource: 'p', version: 'v1' });
    const view = await waiting(orchestrator, submitted.id);
    expect(view.waitingFor).toMatchObject({ kind: 'approval', gate: 'environment', approvers: 'deployer' });
    expect(Date.parse(view.waitingFor!.deadline) - Date.parse(view.waitingFor!.since)).toBe(3_600_000);
    expect(view.phase).toBe('approval');
    expect(await lines()).toEqual([]);

    // The API may run in another process than the saga: the answer goes through the store.
    const api = new Orchestrator({
      db: h.store.db,
      publisher: h.bus.publisher,
      subscriber: h.bus.subscriber,
    });
    await api.approve(submitted.id, { by: 'alice', comment: 'ship it' });
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(done.status).toBe('SUCCESS');
    expect(done.waitingFor).toBeUndefined();
    expect(await lines()).toHaveLength(3);
    expect((await lines())[0]).toBe('deploy railway v1');

    const { requested, completed } = await approvalEvents(submitted.id);
    expect(requested).toHaveLength(1);
    expect(requested[0]!.data).toMatchObject({ gate: 'environment', approvers: 'deployer', project: 'shop' });
    expect(completed).toHaveLength(1);
    expect(completed[0]!.data).toMatchObject({
      gate: 'environment',
      outcome: ApprovalOutcome.APPROVED,
      by: 'alice',
      comment: 'ship it',
    });
    expect(completed[0]!.causationId).toBe(requested[0]!.id);
  }, 40_000);

  it('fails with who rejected it and why, deploying nothing', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({ planText: gated(), planSource: 'p', version: 'v1' });
    await waiting(orchestrator, submitted.id);
    await orchestrator.reject(submitted.id, { by: 'bob', comment: 'not during the sale' });
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(done.status).toBe('FAILURE');
    expect(done.reason).toBe('rejected by bob: not during the sale');
    expect(await lines()).toEqual([]);
    const { completed } = await approvalEvents(submitted.id);
    expect(completed.map((e) => e.data)).toMatchObject([{ outcome: ApprovalOutcome.REJECTED, by: 'bob' }]);
    const failed = (await h.events()).find(
      (e) => e.deploymentId === submitted.id && e.type === 'deployment:failed',
    );
    expect(failed?.data).toMatchObject({
      failedGate: 'approval',
      reason: 'rejected by bob: not during the sale',
    });
  }, 40_000);

  it('fails at its deadline when nobody answers, and a late approval is refused', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({
      planText: gated('{ required: true, timeout: 1s }'),
      planSource: 'p',
      version: 'v1',
    });
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(done.status).toBe('FAILURE');
    expect(done.reason).toMatch(/^approval for environment expired after 1s/);
    const { completed } = await approvalEvents(submitted.id);
    expect(completed.map((e) => e.data)).toMatchObject([{ outcome: ApprovalOutcome.EXPIRED, by: '' }]);
    await expect(orchestrator.approve(submitted.id, { by: 'late' })).rejects.toThrow(ConflictError);
  }, 40_000);

  it('refuses to approve a deployment that does not wait (409) or does not exist (404)', async () => {
    const orchestrator = await h.orchestrator();
    const plain = await orchestrator.submit({
      planText: commandPlan({ log }),
      planSource: 'p',
      version: 'v1',
    });
    const done = await orchestrator.waitFor(plain.id, 20_000);
    expect(done.status).toBe('SUCCESS');
    await expect(orchestrator.approve(plain.id, { by: 'alice' })).rejects.toThrow(
      /does not wait for an approval \(it is SUCCESS/,
    );
    await expect(orchestrator.reject(plain.id, { by: 'alice' })).rejects.toThrow(ConflictError);
    await expect(orchestrator.approve('dep-000000000000', { by: 'alice' })).rejects.toThrow(NotFoundError);
  }, 40_000);

  it('takes only the first answer', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({ planText: gated(), planSource: 'p', version: 'v1' });
    await waiting(orchestrator, submitted.id);
    const answers = await Promise.allSettled([
      orchestrator.approve(submitted.id, { by: 'alice' }),
      orchestrator.reject(submitted.id, { by: 'bob' }),
    ]);
    expect(answers.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(['SUCCESS', 'FAILURE']).toContain(done.status);
    expect((await approvalEvents(submitted.id)).completed).toHaveLength(1);
  }, 40_000);

  it('waits before a stage that asks for an approval, after the stages before it', async () => {
    const orchestrator = await h.orchestrator();
    const plan = commandPlan({ log }).replace(
      '  - name: vercel\n',
      '  - name: vercel\n    approval: { approvers: admin, timeout: 10m }\n',
    );
    const submitted = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v1' });
    const view = await waiting(orchestrator, submitted.id);
    expect(view.waitingFor).toMatchObject({ gate: 'stage:vercel', approvers: 'admin' });
    expect(await lines()).toEqual(['deploy railway v1']);
    await orchestrator.approve(submitted.id, { by: 'carol' });
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(done.status).toBe('SUCCESS');
    expect((await lines()).sort()).toEqual(['deploy folio v1', 'deploy railway v1', 'deploy vercel v1']);
  }, 40_000);

  it('is cancelled by a cancel during the wait', async () => {
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({ planText: gated(), planSource: 'p', version: 'v1' });
    await waiting(orchestrator, submitted.id);
    await orchestrator.cancel(submitted.id, { by: 'dave' });
    const done = await orchestrator.waitFor(submitted.id, 20_000);
    expect(done.status).toBe('CANCELLED');
    expect(done.reason).toBe('cancelled by dave');
    expect(done.waitingFor).toBeUndefined();
  }, 40_000);
});

describe('when the health verdict is inconclusive', () => {
  async function deployV1(orchestrator: Orchestrator, plan: string) {
    const first = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v1' });
    expect((await orchestrator.waitFor(first.id, 20_000)).status).toBe('SUCCESS');
  }

  it('pauses by default; approved, the deployment succeeds', async () => {
    const orchestrator = await h.orchestrator();
    const plan = commandPlan({ log });
    await deployV1(orchestrator, plan);
    h.answers.health = HealthStatus.DEGRADED;
    const second = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    const view = await waiting(orchestrator, second.id);
    expect(view.waitingFor).toMatchObject({ gate: 'health', approvers: 'deployer' });
    expect(view.waitingFor!.reason).toMatch(/^health gate DEGRADED/);
    await orchestrator.approve(second.id, { by: 'erin', comment: 'known slow cache warm-up' });
    const done = await orchestrator.waitFor(second.id, 20_000);
    expect(done.status).toBe('SUCCESS');
    expect(done.state.warnings).toContain('health gate DEGRADED: approved by erin');
  }, 60_000);

  it('pauses by default; rejected, the deployment is rolled back as for a failed health gate', async () => {
    const orchestrator = await h.orchestrator();
    const plan = commandPlan({ log });
    await deployV1(orchestrator, plan);
    h.answers.health = HealthStatus.INCONCLUSIVE;
    const second = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    await waiting(orchestrator, second.id);
    await orchestrator.reject(second.id, { by: 'frank', comment: 'too many 5xx' });
    const done = await orchestrator.waitFor(second.id, 20_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toBe('rejected by frank: too many 5xx');
    expect(await lines()).toContain('rollback railway v1');
    const failed = (await h.events()).find(
      (e) => e.deploymentId === second.id && e.type === 'deployment:failed',
    );
    expect(failed?.data).toMatchObject({ failedGate: 'health' });
  }, 60_000);

  it('fails the health gate with onInconclusive: fail', async () => {
    const orchestrator = await h.orchestrator();
    const plan = onInconclusive('fail');
    await deployV1(orchestrator, plan);
    h.answers.health = HealthStatus.DEGRADED;
    const second = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    const done = await orchestrator.waitFor(second.id, 20_000);
    expect(done.status).toBe('ROLLED_BACK');
    expect(done.reason).toMatch(/^health gate: DEGRADED verdict \(health\.onInconclusive: fail\)/);
    expect((await approvalEvents(second.id)).requested).toHaveLength(0);
  }, 60_000);

  it('warns and succeeds with onInconclusive: succeed', async () => {
    const orchestrator = await h.orchestrator();
    const plan = onInconclusive('succeed');
    await deployV1(orchestrator, plan);
    h.answers.health = HealthStatus.INCONCLUSIVE;
    const second = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    const done = await orchestrator.waitFor(second.id, 20_000);
    expect(done.status).toBe('SUCCESS');
    expect(done.state.warnings.some((w) => w.startsWith('health gate:'))).toBe(true);
    expect((await approvalEvents(second.id)).requested).toHaveLength(0);
  }, 60_000);
});
