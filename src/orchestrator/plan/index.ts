/**
 * Plan files: the YAML that describes a project's services and the stages that deploy them.
 * Load one with {@link loadPlanFile}, order its stages with {@link executionWaves}, and build the
 * workers' specs from it. docs/plan.md is the reference of every key.
 *
 * @module
 */
export { formatDuration, MAX_DURATION_MS, parseDuration } from './duration.js';
export { PlanInvalidError, type PlanIssue } from './errors.js';
export {
  loadPlanFile,
  type PlanLoadOptions,
  parsePlan,
  planReferences,
  RESERVED_VARIABLES,
  VERSION_PATTERN,
} from './load.js';
export { MIGRATION_TOOLS, NO_DATA_POLICIES, STRATEGIES } from './schema.js';
export type { Plan, PlanReference, PlanService, PlanStage } from './types.js';
export { type ExecutionWaves, executionWaves, rollbackWavesFor } from './waves.js';
export {
  buildDependencySpec,
  buildHealthSpec,
  buildValidationSpec,
  type DependencySpec,
  type HealthServiceSpec,
  type HealthSpec,
  type HealthSpecOptions,
  type ValidationSpec,
} from './worker-specs.js';
