import type { Handler } from '../../bus/types.js';
import { UnrecoverableError } from '../../errors/index.js';
import { resultEventId } from '../../events/ids.js';
import {
  CheckStatus,
  ExecutionStatus,
  ValidationResult,
  type ValidationStartedEvent,
} from '../../events/index.js';
import { runValidation, type ValidatorOptions } from './run.js';

/** Consumer group of the validator. */
export const VALIDATOR_GROUP = 'printery-validator';
/** The event type the validator handles. */
export const VALIDATOR_INPUT_TYPE = 'validation:started';

/**
 * The validator as a bus handler: reads a `validation:started` event, runs its spec and publishes
 * `validation:completed` (one `ValidationCheckResult` per check) through the context's publisher,
 * which fills in correlation and causation.
 *
 * The result event's id is derived from the request's id, so a redelivered request that is
 * handled again publishes an event with the same id, which consumers deduplicate. A malformed
 * spec is a result (ERRORED + FAILED), not an error; the handler throws only when the worker is
 * shutting down (the entry is retried elsewhere) or when the result cannot be published.
 */
export function createValidatorHandler(options: ValidatorOptions = {}): Handler {
  return async (event, context) => {
    if (event.type !== VALIDATOR_INPUT_TYPE) {
      throw new UnrecoverableError(`${VALIDATOR_GROUP} handles ${VALIDATOR_INPUT_TYPE}, not ${event.type}`);
    }
    const request = event.data as ValidationStartedEvent;
    const deploymentId = request.deploymentId || event.deploymentId;
    const deadline =
      request.deadlineSeconds > 0
        ? new Date(event.time.getTime() + request.deadlineSeconds * 1000)
        : undefined;
    const outcome =
      request.spec === undefined
        ? {
            result: ValidationResult.FAILED,
            checks: [],
            executionStatus: ExecutionStatus.ERRORED,
            message: 'invalid validation spec: the validation:started event has no spec',
            durationMs: 0,
          }
        : await runValidation(request.spec, {
            ...options,
            logger: options.logger ?? context.logger,
            signal: context.signal,
            deadline,
          });
    await context.publisher.publish({
      type: 'validation:completed',
      id: resultEventId(event.id, 'validation:completed'),
      deploymentId,
      data: {
        deploymentId,
        result: outcome.result,
        checks: outcome.checks,
        executionStatus: outcome.executionStatus,
        message: outcome.message,
        durationMs: outcome.durationMs,
      },
    });
    context.logger.info(
      {
        deployment_id: deploymentId,
        result: ValidationResult[outcome.result],
        execution_status: ExecutionStatus[outcome.executionStatus],
        checks: outcome.checks.length,
        failed: outcome.checks.filter((c) => c.status === CheckStatus.FAILED).map((c) => c.name),
        duration_ms: outcome.durationMs,
      },
      'validation completed',
    );
  };
}
