import type { Handler } from '../../bus/types.js';
import { UnrecoverableError } from '../../errors/index.js';
import { resultEventId } from '../../events/ids.js';
import {
  DependencyCheckResult,
  type DependencyCheckStartedEvent,
  ExecutionStatus,
} from '../../events/index.js';
import { type DependencyCheckerOptions, type DependencyOutcome, runDependencyChecks } from './run.js';

/** Consumer group of the dependency checker. */
export const DEPENDENCY_CHECKER_GROUP = 'printery-dependency-checker';
/** The event type the dependency checker handles. */
export const DEPENDENCY_CHECKER_INPUT_TYPE = 'dependency:check:started';

/**
 * The dependency checker as a bus handler: reads a `dependency:check:started` event, probes its
 * dependencies and publishes `dependency:check:completed` (one `DependencyStatus` each) through
 * the context's publisher, which fills in correlation and causation.
 *
 * The result event's id is derived from the request's id, so handling a redelivered request again
 * publishes an event with the same id, which consumers deduplicate. A malformed spec is a result
 * (ERRORED + ALL_UNHEALTHY), not an error; the handler throws only when the worker is shutting
 * down (the entry is retried elsewhere) or when the result cannot be published.
 */
export function createDependencyCheckerHandler(options: DependencyCheckerOptions = {}): Handler {
  return async (event, context) => {
    if (event.type !== DEPENDENCY_CHECKER_INPUT_TYPE) {
      throw new UnrecoverableError(
        `${DEPENDENCY_CHECKER_GROUP} handles ${DEPENDENCY_CHECKER_INPUT_TYPE}, not ${event.type}`,
      );
    }
    const request = event.data as DependencyCheckStartedEvent;
    const deploymentId = request.deploymentId || event.deploymentId;
    const deadline =
      request.deadlineSeconds > 0
        ? new Date(event.time.getTime() + request.deadlineSeconds * 1000)
        : undefined;
    const outcome: DependencyOutcome =
      request.spec === undefined
        ? {
            result: DependencyCheckResult.ALL_UNHEALTHY,
            dependencies: [],
            executionStatus: ExecutionStatus.ERRORED,
            message: 'invalid dependency spec: the dependency:check:started event has no spec',
            durationMs: 0,
          }
        : await runDependencyChecks(request.spec, {
            ...options,
            logger: options.logger ?? context.logger,
            signal: context.signal,
            deadline,
          });
    await context.publisher.publish({
      type: 'dependency:check:completed',
      id: resultEventId(event.id, 'dependency:check:completed'),
      deploymentId,
      data: {
        deploymentId,
        result: outcome.result,
        dependencies: outcome.dependencies,
        executionStatus: outcome.executionStatus,
        message: outcome.message,
        durationMs: outcome.durationMs,
      },
    });
    context.logger.info(
      {
        deployment_id: deploymentId,
        result: DependencyCheckResult[outcome.result],
        execution_status: ExecutionStatus[outcome.executionStatus],
        dependencies: outcome.dependencies.length,
        unhealthy: outcome.dependencies.filter((d) => !d.healthy).map((d) => d.name),
        duration_ms: outcome.durationMs,
      },
      'dependency check completed',
    );
  };
}
