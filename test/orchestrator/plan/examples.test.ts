import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  buildDependencySpec,
  buildHealthSpec,
  buildValidationSpec,
  executionWaves,
  loadPlanFile,
} from '../../../src/orchestrator/plan/index.js';

const example = (name: string) => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));

describe('example plans', () => {
  it('three-stage.yaml is valid: Railway and folio first, then Vercel', async () => {
    const plan = await loadPlanFile(example('three-stage.yaml'), { version: 'v1.4.2' });
    const { waves, rollbackOrder } = executionWaves(plan);
    expect(waves.map((wave) => wave.map((s) => `${s.name}:${s.provider.type}`))).toEqual([
      ['railway:railway', 'folio:command'],
      ['vercel:vercel'],
    ]);
    expect(rollbackOrder).toEqual(['vercel', 'folio', 'railway']);
    expect(plan.references.map((r) => r.name)).toEqual([
      'DATABASE_URL',
      'FOLIO_SSH_KEY',
      'RAILWAY_TOKEN',
      'REDIS_URL',
      'REGISTRY_PASSWORD',
      'REGISTRY_USER',
      'VERCEL_TOKEN',
    ]);
    expect(buildValidationSpec(plan).images.map((i) => i.image)).toEqual([
      'ghcr.io/materi/api:v1.4.2',
      'ghcr.io/materi/worker:v1.4.2',
    ]);
    expect(buildDependencySpec(plan).dependencies.map((d) => `${d.service}/${d.name}`)).toEqual([
      'api/postgres-main',
      'api/cache',
      'api/billing',
      'worker/queue',
      'web/api-public',
      'docs/folio-ssh',
    ]);
    expect(buildHealthSpec(plan).services.map((s) => s.name)).toEqual(['api', 'worker', 'web', 'docs']);
  });

  it('local.yaml is valid and runs three local services', async () => {
    const plan = await loadPlanFile(example('local.yaml'));
    expect(plan.stages.map((s) => s.provider.type)).toEqual(['local', 'local', 'local']);
    expect(executionWaves(plan).waves.map((wave) => wave.map((s) => s.name))).toEqual([
      ['api'],
      ['worker', 'web'],
    ]);
    expect(plan.references).toEqual([]);
    expect(plan.baseDir).toBe(fileURLToPath(new URL('../../../examples', import.meta.url)));
  });
});
