/**
 * Stage providers: what deploys a plan stage to its target and restores the previous version.
 *
 * The orchestrator calls {@link deployStage} / {@link rollbackStage} with a stage of the plan and
 * the deployment; they pick the provider by `stage.provider.type` ({@link createProvider}), add
 * the stage's timeout to the cancel signal and turn any failure into a {@link StageFailedError}.
 * Types: `command` (shell commands), `http` (deploy hook + status polling), `vercel` (REST API),
 * `railway` (GraphQL API), `local` (a process on this machine). docs/plan.md lists their settings.
 *
 * @module
 */
export { StageFailedError, type StageFailureKind } from './errors.js';
export {
  type LocalInstance,
  type LocalInstanceKey,
  localStatePath,
  readLocalInstance,
  stopLocalInstance,
} from './local.js';
export { killGroupsInFlight } from './process-group.js';
export { createProvider } from './registry.js';
export { deployStage, rollbackStage, type StageRunOptions } from './run-stage.js';
export {
  type CommandSettings,
  type HttpSettings,
  type LocalSettings,
  PROVIDER_TYPES,
  type ProviderConfig,
  type ProviderType,
  providerSettingsSchema,
  type RailwaySettings,
  type VercelSettings,
} from './settings.js';
export type {
  Artifact,
  DeploymentInfo,
  ProviderContext,
  StageOutcome,
  StageProvider,
  StageRef,
} from './types.js';
