import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotCurrentReleaseError, NotFoundError } from '../../src/errors/index.js';
import { currentRelease, releaseHistory } from '../../src/orchestrator/ledger.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import { commandPlan, type OrchestratorHarness, openOrchestratorHarness } from './support/harness.js';

let h: OrchestratorHarness;
let orchestrator: Orchestrator;
let planText: string;
let broken: string;

beforeEach(async () => {
  h = await openOrchestratorHarness();
  orchestrator = await h.orchestrator();
  broken = path.join(h.workdir, 'broken');
  // The stage fails while the file `broken` exists.
  planText = commandPlan({
    log: path.join(h.workdir, 'log'),
    stages: [{ name: 'api', deploy: `test ! -f ${broken} || { echo "api is broken" >&2; exit 3; }` }],
  });
});
afterEach(async () => {
  await h.close();
});

async function deploy(version: string) {
  const started = await orchestrator.submit({ planText, planSource: 'plan.yaml', version });
  return orchestrator.waitFor(started.id, 30_000);
}

describe('the release ledger', () => {
  it('rolls an environment back to the previous good release, and further back when asked again', async () => {
    await deploy('v1');
    await deploy('v2');
    await deploy('v3');
    const back = await orchestrator.rollbackEnvironment('shop', 'staging', { by: 'ana' });
    expect(back).toMatchObject({
      kind: 'rollback',
      version: 'v2',
      previousVersion: 'v3',
      triggeredBy: 'ana',
    });
    expect((await orchestrator.waitFor(back.id, 30_000)).status).toBe('SUCCESS');
    expect(await currentRelease(h.store.db, 'shop', 'staging')).toMatchObject({
      version: 'v2',
      deploymentId: back.id,
      kind: 'rollback',
      triggeredBy: 'ana',
    });
    // Again: v1, not v3 (the release that was rolled away from).
    const further = await orchestrator.rollbackEnvironment('shop', 'staging');
    expect(further.version).toBe('v1');
    expect((await orchestrator.waitFor(further.id, 30_000)).status).toBe('SUCCESS');
    expect(
      (await releaseHistory(h.store.db, 'shop', 'staging')).map((r) => `${r.version} ${r.kind}`),
    ).toEqual(['v1 rollback', 'v2 rollback', 'v3 deploy', 'v2 deploy', 'v1 deploy']);
    // Nothing before v1 that was not rolled away from.
    await expect(orchestrator.rollbackEnvironment('shop', 'staging')).rejects.toThrow(
      /nothing to roll back to/,
    );
  });

  it('rolls back with the plan that first released the version, not the one a manual rollback restored it from', async () => {
    await deploy('v1');
    // v2's plan adds a stage; rolling v2 back restores v1 (the ledger entry names v2's deployment).
    const v2Plan = commandPlan({
      log: path.join(h.workdir, 'log'),
      stages: [{ name: 'api' }, { name: 'search', dependsOn: ['api'] }],
    });
    const v2 = await orchestrator.waitFor(
      (await orchestrator.submit({ planText: v2Plan, planSource: 'plan.yaml', version: 'v2' })).id,
      30_000,
    );
    await orchestrator.rollback(v2.id, { by: 'bob' });
    expect((await orchestrator.waitFor(v2.id, 30_000)).status).toBe('ROLLED_BACK');
    await deploy('v3');
    const back = await orchestrator.rollbackEnvironment('shop', 'staging', { to: 'v1' });
    const done = await orchestrator.waitFor(back.id, 30_000);
    expect(done.status).toBe('SUCCESS');
    expect(Object.keys(done.state.stages)).toEqual(['api']);
  });

  it('refuses what cannot be rolled back, saying why', async () => {
    await expect(orchestrator.rollbackEnvironment('shop', 'staging')).rejects.toThrow(
      new NotFoundError('nothing was ever released to staging of shop, so there is nothing to roll back'),
    );
    const v1 = await deploy('v1');
    await expect(orchestrator.rollbackEnvironment('shop', 'staging')).rejects.toThrow(
      /had no release before v1, so there is nothing to roll back to/,
    );
    await expect(orchestrator.rollbackEnvironment('shop', 'staging', { to: 'v1' })).rejects.toThrow(
      ConflictError,
    );
    const v2 = await deploy('v2');
    await expect(orchestrator.rollback(v1.id)).rejects.toThrow(NotCurrentReleaseError);
    await expect(orchestrator.rollback(v1.id)).rejects.toThrow(`v2 is, from deployment ${v2.id}`);
    // A failed deployment does not change what runs.
    await writeFile(broken, '');
    const failed = await deploy('v3');
    expect(failed.status).toBe('FAILURE');
    expect((await currentRelease(h.store.db, 'shop', 'staging'))?.version).toBe('v2');
    await rm(broken);
    expect((await deploy('v4')).previousVersion).toBe('v2');
  });

  it('does not roll back a rollback that fails, and leaves the ledger as it was', async () => {
    await deploy('v1');
    const v2 = await deploy('v2');
    await writeFile(broken, '');
    const back = await orchestrator.rollbackEnvironment('shop', 'staging', { to: 'v1' });
    const ended = await orchestrator.waitFor(back.id, 30_000);
    expect(ended.status).toBe('FAILURE');
    expect(ended.reason).toContain('api is broken');
    expect(ended.state.rollback).toBeUndefined();
    const types = (await h.events()).filter((e) => e.deploymentId === back.id).map((e) => e.type);
    expect(types).not.toContain('rollback:initiated');
    expect(types).not.toContain('validation:started');
    expect(await currentRelease(h.store.db, 'shop', 'staging')).toMatchObject({
      version: 'v2',
      deploymentId: v2.id,
    });
  });

  it('refuses an environment rollback while another deployment runs there', async () => {
    await deploy('v1');
    await deploy('v2');
    h.answers.validation = 'silent';
    const running = await orchestrator.submit({ planText, planSource: 'plan.yaml', version: 'v3' });
    await expect(orchestrator.rollbackEnvironment('shop', 'staging')).rejects.toThrow(
      `environment staging of shop is busy with deployment ${running.id}`,
    );
    await orchestrator.cancel(running.id);
  });
});
