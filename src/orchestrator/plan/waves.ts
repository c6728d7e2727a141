import type { PlanStage } from './types.js';

/** The order in which a plan's stages run and roll back. */
export interface ExecutionWaves {
  /**
   * Stages grouped in waves: every stage of a wave depends only on stages of earlier waves, so the
   * stages of one wave may run in parallel. Within a wave, stages keep their plan order.
   */
  waves: PlanStage[][];
  /** The waves in reverse: a stage rolls back only after every stage that depends on it. */
  rollbackWaves: PlanStage[][];
  /** Stage names in deployment order (the waves flattened). */
  order: string[];
  /** Stage names in rollback order (the reverse of `order`). */
  rollbackOrder: string[];
}

/**
 * Groups the stages of a valid plan into waves (Kahn's algorithm by levels). The plan loader has
 * already rejected unknown dependencies and cycles; a graph that still has one throws.
 */
export function executionWaves(plan: { stages: PlanStage[] }): ExecutionWaves {
  const placed = new Set<string>();
  let remaining = [...plan.stages];
  const waves: PlanStage[][] = [];
  while (remaining.length > 0) {
    const wave = remaining.filter((stage) => stage.dependsOn.every((name) => placed.has(name)));
    if (wave.length === 0)
      throw new Error(
        `stages ${remaining.map((s) => s.name).join(', ')} depend on each other or on unknown stages`,
      );
    for (const stage of wave) placed.add(stage.name);
    remaining = remaining.filter((stage) => !placed.has(stage.name));
    waves.push(wave);
  }
  const rollbackWaves = [...waves].reverse();
  const order = waves.flat().map((stage) => stage.name);
  return { waves, rollbackWaves, order, rollbackOrder: [...order].reverse() };
}

/**
 * The rollback waves limited to some stages (those that ran), e.g. after a failure in wave 2 only
 * the stages of waves 1 and 2 that deployed are rolled back. Empty waves are dropped.
 */
export function rollbackWavesFor(plan: { stages: PlanStage[] }, stageNames: Iterable<string>): PlanStage[][] {
  const wanted = new Set(stageNames);
  return executionWaves(plan)
    .rollbackWaves.map((wave) => wave.filter((stage) => wanted.has(stage.name)))
    .filter((wave) => wave.length > 0);
}
