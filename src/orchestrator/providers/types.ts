import type { Logger } from '../../runtime/logging.js';
import type { Lookup } from '../../runtime/references.js';
import type { ProviderConfig, ProviderType } from './settings.js';

/** Something a stage produced, as carried by stage events (`Artifact` in the proto). */
export interface Artifact {
  /** Short name, e.g. `url`, `log`, `deployment_id`, `api.previous_deployment_id`. */
  name: string;
  /** What kind of value it is. */
  kind: 'url' | 'text' | 'id';
  /** The value; never a secret. */
  value: string;
}

/** What a provider returns when a deploy or rollback succeeded. */
export interface StageOutcome {
  /** Everything the action produced, including what it recorded along the way. */
  artifacts: Artifact[];
  /** Output worth keeping (a command's output, the last status), bounded to 64 KiB. */
  log?: string;
}

/** The deployment a stage belongs to. */
export interface DeploymentInfo {
  /** Deployment id. */
  id: string;
  /** Version being deployed. */
  version: string;
  /** Version running before this deployment, the rollback target; absent on a first deployment. */
  previousVersion?: string;
  /** Target environment. */
  environment: string;
  /** Project name from the plan. */
  project: string;
}

/** The part of a plan stage a provider needs (a `PlanStage` is one). */
export interface StageRef {
  name: string;
  services: string[];
  provider: ProviderConfig;
  /** Deadline of one deploy or rollback, in milliseconds. */
  timeoutMs: number;
}

/**
 * What a provider gets for one action.
 *
 * Contract: a provider resolves `${NAME}` references in its settings through `env` at the moment
 * of use and never logs, records or reports a resolved value. It stops promptly when `signal`
 * aborts, cleans up what it started (processes, in-flight requests) and then rejects. It calls
 * `record` as soon as an artifact is known (e.g. the id of the deployment it replaces) so a saga
 * can persist it before the action ends, and also returns it in the outcome.
 */
export interface ProviderContext {
  stage: StageRef;
  deployment: DeploymentInfo;
  /** Aborted on cancel or timeout; see {@link abortReason}. */
  signal: AbortSignal;
  logger: Logger;
  /** Resolves `${NAME}` references in provider settings (normally the process environment). */
  env: Lookup;
  /** Directory that relative paths in settings are resolved against. */
  baseDir: string;
  /** Where providers keep local state (the local provider's pid files); relative to the current directory. */
  dataDir: string;
  /** For rollback: what the deploy of this stage recorded, when known. */
  artifacts?: Artifact[];
  /** Called as soon as an artifact is known. */
  record: (artifact: Artifact) => void;
}

/**
 * A stage executor: deploys the stage's services to a target and restores the previous version.
 *
 * `deploy` installs `deployment.version`; `rollback` restores `deployment.previousVersion` (using
 * `artifacts` from the deploy when given). Both resolve with a {@link StageOutcome} or reject with a
 * one-line message naming the problem (see {@link StageFailedError}); neither leaves processes or
 * requests running after it settles.
 */
export interface StageProvider {
  readonly type: ProviderType;
  deploy(context: ProviderContext): Promise<StageOutcome>;
  rollback(context: ProviderContext): Promise<StageOutcome>;
}
