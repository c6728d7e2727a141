import type { ParsedPlan } from './schema.js';

type ParsedService = ParsedPlan['services'][string];
type ParsedStage = ParsedPlan['stages'][number];

/** A service of a loaded plan. Durations are milliseconds; secrets are still `${NAME}` references. */
export interface PlanService extends ParsedService {
  /** The key under `services`. */
  name: string;
}

/**
 * A stage of a loaded plan: `name`, `description`, `services`, `dependsOn`, `provider` (the
 * provider's validated settings, see providers/settings.ts) and `timeoutMs` (deadline of one deploy
 * or rollback of the stage).
 */
export interface PlanStage extends ParsedStage {}

/** An environment variable a plan references, and where. */
export interface PlanReference {
  /** Variable name, e.g. `DATABASE_URL`. */
  name: string;
  /** Plan paths that use it, e.g. `services.api.dependencies[0].url`. */
  paths: string[];
}

/**
 * A loaded, valid plan: defaults applied, load-time values and vars expanded (the plan's `vars`
 * defaults are used up by that and not kept), durations in milliseconds.
 */
export interface Plan extends Omit<ParsedPlan, 'services' | 'stages' | 'vars'> {
  /** The plan file, or the label given to `parsePlan`; used in messages. */
  source: string;
  /** Directory that relative paths in provider settings (`cwd`) are resolved against. */
  baseDir: string;
  /** The version given at load time (`${VERSION}` expanded), if any. */
  version?: string;
  /** The deployment id given at load time (`${DEPLOYMENT_ID}` expanded), if any. */
  deploymentId?: string;
  /** Services by name, in file order. */
  services: Record<string, PlanService>;
  /** Stages in file order; see `executionWaves` for the order they run in. */
  stages: PlanStage[];
  /**
   * Environment variables the plan references and that are resolved where they are used (the
   * orchestrator for provider settings, workers for checks), sorted by name. Names only, never values.
   */
  references: PlanReference[];
}
