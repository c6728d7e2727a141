import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeploymentStatus } from '../../src/events/index.js';
import type { StageProvider } from '../../src/orchestrator/providers/index.js';
import { eventually } from '../support/redis.js';
import { commandPlan, type OrchestratorHarness, openOrchestratorHarness } from './support/harness.js';

let h: OrchestratorHarness;
beforeEach(async () => {
  h = await openOrchestratorHarness();
});
afterEach(async () => {
  await h.close();
});

/** A provider that ignores its abort signal and returns only when released. */
function stubbornProvider(): { provider: StageProvider; release: () => void } {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const provider: StageProvider = {
    type: 'command',
    deploy: async () => {
      await released;
      return { artifacts: [] };
    },
    rollback: async () => ({ artifacts: [] }),
  };
  return { provider, release };
}

describe('Orchestrator.abandon (the fail-safe after a cancel that does not settle)', () => {
  it('records the deployment FAILED with the reason, frees its environment and announces the end', async () => {
    const stubborn = stubbornProvider();
    const orchestrator = await h.orchestrator({ providerFor: () => stubborn.provider });
    const plan = commandPlan({ log: path.join(h.workdir, 'log'), stages: [{ name: 'api' }] });
    const running = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v1' });
    await eventually(async () => (await orchestrator.get(running.id)).state.stages.api?.status === 'running');
    await orchestrator.cancel(running.id, { by: 'ana' });
    expect((await orchestrator.get(running.id)).status).toBe('RUNNING');

    const ended = await orchestrator.abandon(running.id, 'the cancel did not finish within 20 s');
    expect(ended.status).toBe('FAILURE');
    expect(ended.reason).toBe('the cancel did not finish within 20 s');
    expect(ended.finishedAt).toBeDefined();

    // The stuck saga wakes up later: it no longer owns the row and changes nothing.
    stubborn.release();
    await new Promise((r) => setTimeout(r, 300));
    const later = await orchestrator.get(running.id);
    expect(later.status).toBe('FAILURE');
    expect(later.reason).toBe('the cancel did not finish within 20 s');

    // The environment is free again.
    const next = await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v2' });
    expect(next.status).not.toBe('FAILURE');
    await orchestrator.cancel(next.id);

    const events = (await h.events()).filter((e) => e.deploymentId === running.id);
    expect(events.find((e) => e.type === 'deployment:failed')?.data).toMatchObject({
      reason: 'the cancel did not finish within 20 s',
      failedGate: 'cancel',
    });
    expect(events.filter((e) => e.type === 'deployment:completed').map((e) => e.data)).toEqual([
      expect.objectContaining({ status: DeploymentStatus.FAILURE }),
    ]);
  });

  it('leaves a deployment that already ended as it is', async () => {
    const orchestrator = await h.orchestrator();
    const plan = commandPlan({ log: path.join(h.workdir, 'log'), stages: [{ name: 'api' }] });
    const done = await orchestrator.waitFor(
      (await orchestrator.submit({ planText: plan, planSource: 'p', version: 'v1' })).id,
      20_000,
    );
    expect(done.status).toBe('SUCCESS');
    const after = await orchestrator.abandon(done.id, 'too late');
    expect(after.status).toBe('SUCCESS');
    expect(after.reason).toBeUndefined();
  });
});
