import { MateriError } from '../../errors/index.js';
import type { Artifact } from './types.js';

/** Why a stage action did not succeed. */
export type StageFailureKind = 'failed' | 'timeout' | 'cancelled';

/**
 * A stage's deploy or rollback did not succeed. The message is one line naming the problem (e.g.
 * `command exited with code 3: rsync: connection refused`) and never holds a secret. `artifacts`
 * are what the action recorded before it stopped (a rollback needs them), `log` the output kept.
 */
export class StageFailedError extends MateriError {
  readonly stage: string;
  readonly action: 'deploy' | 'rollback';
  readonly kind: StageFailureKind;
  readonly artifacts: Artifact[];
  readonly log?: string;

  constructor(
    details: {
      stage: string;
      action: 'deploy' | 'rollback';
      kind?: StageFailureKind;
      artifacts?: Artifact[];
      log?: string;
    },
    message: string,
    options?: { cause?: unknown },
  ) {
    super(details.kind === 'timeout' ? 'MATERI_ERR_TIMEOUT' : 'MATERI_ERR_UNRECOVERABLE', message, options);
    this.stage = details.stage;
    this.action = details.action;
    this.kind = details.kind ?? 'failed';
    this.artifacts = details.artifacts ?? [];
    this.log = details.log;
  }
}

/**
 * Thrown inside a provider for a failure with output worth keeping; {@link StageFailedError} is
 * made from it by the stage runner.
 */
export class ProviderFailure extends Error {
  readonly log?: string;
  constructor(message: string, log?: string) {
    super(message);
    this.name = 'ProviderFailure';
    this.log = log;
  }
}
