import { MateriError } from '../../errors/index.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { type Lookup, planLookup } from '../../runtime/references.js';
import { formatDuration } from '../plan/duration.js';
import { ProviderFailure, StageFailedError } from './errors.js';
import { createProvider } from './registry.js';
import type {
  Artifact,
  DeploymentInfo,
  ProviderContext,
  StageOutcome,
  StageProvider,
  StageRef,
} from './types.js';

/** Options of {@link deployStage} and {@link rollbackStage}. */
export interface StageRunOptions {
  stage: StageRef;
  deployment: DeploymentInfo;
  /** Cancels the action (the saga's cancel); the stage's own `timeoutMs` is added to it. */
  signal?: AbortSignal;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /** Resolves `${NAME}` references in provider settings. @defaultValue the process environment */
  env?: Lookup;
  /** @defaultValue the current directory (use the plan's `baseDir`) */
  baseDir?: string;
  /** @defaultValue `MATERI_DATA_DIR` or `.materi` */
  dataDir?: string;
  /** For rollback: the artifacts the deploy recorded (from its outcome or its StageFailedError). */
  artifacts?: Artifact[];
  /** Called as soon as the provider knows an artifact, so it can be persisted before the action ends. */
  onArtifact?: (artifact: Artifact) => void;
  /** Use this provider instead of one made from `stage.provider` (tests, custom providers). */
  provider?: StageProvider;
}

/**
 * Deploys one stage with its provider, within the stage's `timeoutMs`. Resolves with the outcome
 * or rejects with {@link StageFailedError} (kind `failed`, `timeout` or `cancelled`) whose
 * message is one line naming the problem and whose `artifacts` hold what was recorded.
 */
export function deployStage(options: StageRunOptions): Promise<StageOutcome> {
  return runStageAction('deploy', options);
}

/** Rolls one stage back to `deployment.previousVersion`; see {@link deployStage}. */
export function rollbackStage(options: StageRunOptions): Promise<StageOutcome> {
  return runStageAction('rollback', options);
}

async function runStageAction(
  action: 'deploy' | 'rollback',
  options: StageRunOptions,
): Promise<StageOutcome> {
  const { stage } = options;
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new StageTimeout(stage.timeoutMs)),
    Math.max(1, stage.timeoutMs),
  );
  const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
  const recorded: Artifact[] = [];
  const context: ProviderContext = {
    stage,
    deployment: options.deployment,
    signal,
    logger: (options.logger ?? silentLogger()).child({
      stage: stage.name,
      provider: stage.provider.type,
      action,
    }),
    env: options.env ?? planLookup(),
    baseDir: options.baseDir ?? process.cwd(),
    dataDir: options.dataDir ?? process.env.MATERI_DATA_DIR ?? '.materi',
    ...(options.artifacts ? { artifacts: options.artifacts } : {}),
    record: (artifact) => {
      const at = recorded.findIndex((a) => a.name === artifact.name);
      if (at >= 0) recorded[at] = artifact;
      else recorded.push(artifact);
      options.onArtifact?.(artifact);
    },
  };
  try {
    const provider = options.provider ?? createProvider(stage.provider);
    // An action that finished counts even if the deadline passed meanwhile: it did happen.
    const outcome = await provider[action](context);
    return { ...outcome, artifacts: mergeArtifacts(recorded, outcome.artifacts) };
  } catch (error) {
    throw toStageFailure(error, action, options, signal, recorded);
  } finally {
    clearTimeout(timer);
  }
}

class StageTimeout extends Error {
  constructor(readonly ms: number) {
    super(`timed out after ${formatDuration(ms)}`);
  }
}

function toStageFailure(
  error: unknown,
  action: 'deploy' | 'rollback',
  options: StageRunOptions,
  signal: AbortSignal,
  recorded: Artifact[],
): StageFailedError {
  if (error instanceof StageFailedError) return error;
  const details = { stage: options.stage.name, action, artifacts: recorded };
  const log = error instanceof ProviderFailure ? error.log : undefined;
  if (signal.aborted) {
    const timedOut = signal.reason instanceof StageTimeout;
    const message = timedOut ? `${action} ${(signal.reason as StageTimeout).message}` : `${action} cancelled`;
    return new StageFailedError({ ...details, kind: timedOut ? 'timeout' : 'cancelled', log }, message, {
      cause: error,
    });
  }
  const message =
    error instanceof ProviderFailure || error instanceof MateriError
      ? error.message
      : `${options.stage.provider.type}: ${error instanceof Error ? error.message : String(error)}`;
  return new StageFailedError({ ...details, kind: 'failed', log }, message, { cause: error });
}

function mergeArtifacts(recorded: Artifact[], returned: Artifact[]): Artifact[] {
  const merged = [...recorded];
  for (const artifact of returned) {
    const at = merged.findIndex((a) => a.name === artifact.name);
    if (at >= 0) merged[at] = artifact;
    else merged.push(artifact);
  }
  return merged;
}
