import { describe, expect, it } from 'vitest';
import { executionWaves, parsePlan, rollbackWavesFor } from '../../../src/orchestrator/plan/index.js';

/** Stages a..e: b and c after a, d after b and c, e on its own. */
const DIAMOND = parsePlan(
  `project: materi
services: { a: {}, b: {}, c: {}, d: {}, e: {} }
stages:
  - { name: d, services: [d], dependsOn: [b, c], provider: { type: command, deploy: x } }
  - { name: a, services: [a], provider: { type: command, deploy: x } }
  - { name: c, services: [c], dependsOn: [a], provider: { type: command, deploy: x } }
  - { name: b, services: [b], dependsOn: [a], provider: { type: command, deploy: x } }
  - { name: e, services: [e], provider: { type: command, deploy: x } }
`,
  'diamond.yaml',
);

const names = (waves: { name: string }[][]) => waves.map((wave) => wave.map((stage) => stage.name));

describe('execution waves', () => {
  it('runs independent stages together and each stage after everything it depends on', () => {
    const plan = executionWaves(DIAMOND);
    expect(names(plan.waves)).toEqual([['a', 'e'], ['c', 'b'], ['d']]);
    expect(plan.order).toEqual(['a', 'e', 'c', 'b', 'd']);
  });

  it('rolls back in the reverse order', () => {
    const plan = executionWaves(DIAMOND);
    expect(names(plan.rollbackWaves)).toEqual([['d'], ['c', 'b'], ['a', 'e']]);
    expect(plan.rollbackOrder).toEqual(['d', 'b', 'c', 'e', 'a']);
  });

  it('rolls back only the stages that ran', () => {
    expect(names(rollbackWavesFor(DIAMOND, ['a', 'b', 'e']))).toEqual([['b'], ['a', 'e']]);
    expect(rollbackWavesFor(DIAMOND, [])).toEqual([]);
  });

  it('keeps a plan without dependencies in one wave', () => {
    const flat = parsePlan(
      `project: materi
services: { a: {}, b: {} }
stages:
  - { name: a, services: [a], provider: { type: command, deploy: x } }
  - { name: b, services: [b], provider: { type: command, deploy: x } }
`,
      'flat.yaml',
    );
    expect(names(executionWaves(flat).waves)).toEqual([['a', 'b']]);
  });
});
