import { performance } from 'node:perf_hooks';
import type { Handler, HandlerContext } from '../../bus/types.js';
import { ConfigError, describeCause, UnrecoverableError } from '../../errors/index.js';
import { stableEventId } from '../../events/ids.js';
import { ExecutionStatus, type HealthCheckStartedEvent, HealthStatus } from '../../events/index.js';
import { redactUrl } from '../../runtime/logging.js';
import {
  evaluateHealthWindow,
  type HealthOutcome,
  type HealthWindowOptions,
  resolveWindowLimits,
} from './window.js';

/** The consumer group of the health monitor. */
export const HEALTH_MONITOR_GROUP = 'printery-health-monitor';
/** The event type the health monitor reads. */
export const HEALTH_MONITOR_INPUT_TYPE = 'health:check:started';
/** The event type the health monitor publishes. */
const HEALTH_CHECK_COMPLETED = 'health:check:completed';

/** Options of {@link createHealthMonitorHandler}: the window limits plus claim renewal. */
export interface HealthMonitorOptions
  extends Omit<HealthWindowOptions, 'signal' | 'services' | 'deadlineMs' | 'logger'> {
  /**
   * How often the handler tells the group it still holds the event while a window runs. Keep it
   * well under the group's reclaim idle time. @defaultValue 10000
   */
  claimRenewIntervalMs?: number;
}

/**
 * The handler the router runs for `health:check:started` (group `printery-health-monitor`).
 *
 * It watches the requested services for the spec's window, renewing its claim on the entry
 * meanwhile, and publishes one `health:check:completed` with the verdict. The result's event id
 * is derived from the request's, so a redelivered request that completes twice yields one event
 * for deduplicating consumers. When `context.signal` aborts (shutdown, lost claim) it stops
 * polling and throws without publishing, so another consumer runs the window again. A malformed
 * spec is answered (ERRORED), never thrown.
 *
 * @throws ConfigError at creation for an option that is not a positive integer.
 */
export function createHealthMonitorHandler(options: HealthMonitorOptions = {}): Handler {
  resolveWindowLimits(options);
  const { claimRenewIntervalMs = 10_000, ...windowOptions } = options;
  if (!Number.isInteger(claimRenewIntervalMs) || claimRenewIntervalMs <= 0) {
    throw new ConfigError(
      `health monitor option claimRenewIntervalMs must be a positive integer, got ${claimRenewIntervalMs}`,
    );
  }

  return async (event, context) => {
    if (event.type !== HEALTH_MONITOR_INPUT_TYPE) {
      throw new UnrecoverableError(
        `${HEALTH_MONITOR_GROUP} handles ${HEALTH_MONITOR_INPUT_TYPE}, not ${event.type}`,
      );
    }
    const started = performance.now();
    const request = event.data as HealthCheckStartedEvent;
    const deploymentId = request.deploymentId || event.deploymentId;
    const logger = context.logger.child({ deployment_id: deploymentId });
    const renewal = renewClaimPeriodically(context, claimRenewIntervalMs);
    let outcome: HealthOutcome;
    try {
      outcome = await evaluateHealthWindow(request.spec, {
        ...windowOptions,
        signal: context.signal,
        services: request.services,
        deadlineMs: request.deadlineSeconds > 0 ? request.deadlineSeconds * 1000 : undefined,
        logger,
      });
    } catch (error) {
      if (context.signal.aborted) {
        logger.warn({ renewals: renewal.count() }, 'health window aborted; leaving the event for a retry');
        throw error;
      }
      // An internal failure is answered like a bad spec: the orchestrator gets a reason now
      // instead of a missed deadline.
      outcome = {
        status: HealthStatus.UNHEALTHY,
        executionStatus: ExecutionStatus.ERRORED,
        rollbackRecommended: false,
        reason: `health check could not run: ${redactUrls(describeCause(error))}`,
        services: [],
        durationMs: 0,
      };
    } finally {
      renewal.stop();
    }
    context.signal.throwIfAborted();

    await context.publisher.publish({
      type: HEALTH_CHECK_COMPLETED,
      id: stableEventId(`${HEALTH_CHECK_COMPLETED}/${event.id}`),
      correlationId: event.correlationId,
      causationId: event.id,
      data: {
        deploymentId,
        status: outcome.status,
        services: outcome.services,
        rollbackRecommended: outcome.rollbackRecommended,
        reason: outcome.reason,
        executionStatus: outcome.executionStatus,
        purpose: request.purpose,
        durationMs: Math.round(performance.now() - started),
      },
    });
    logger.info(
      {
        status: HealthStatus[outcome.status],
        execution_status: ExecutionStatus[outcome.executionStatus],
        rollback_recommended: outcome.rollbackRecommended,
        services: outcome.services.length,
        renewals: renewal.count(),
      },
      `health check completed: ${outcome.reason}`,
    );
  };
}

/** Calls `renewClaim` every interval until stopped; a failed renewal is logged, not fatal. */
function renewClaimPeriodically(context: HandlerContext, intervalMs: number) {
  let renewals = 0;
  let pending = false;
  const timer = setInterval(() => {
    // A renewal still in flight is not stacked: Redis is slow or gone, another call won't help.
    if (pending) return;
    pending = true;
    renewals++;
    context
      .renewClaim()
      .catch((error: unknown) => context.logger.warn({ err: describeCause(error) }, 'claim renewal failed'))
      .finally(() => {
        pending = false;
      });
  }, intervalMs);
  return {
    stop: () => clearInterval(timer),
    count: () => renewals,
  };
}

function redactUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (url) => redactUrl(url));
}
