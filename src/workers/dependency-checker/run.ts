import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { untilAborted } from '../../bus/backoff.js';
import { ConfigError, describeCause, MateriError } from '../../errors/index.js';
import { DependencyCheckResult, ExecutionStatus } from '../../events/index.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { expandReferences, type Lookup, planLookup } from '../../runtime/references.js';
import { SecretMask } from '../../runtime/secrets.js';
import {
  type DependencyProbe,
  type DependencySettings,
  type ProbeContext,
  ProbeFailure,
  type ProbeVerdict,
} from './probe.js';
import { DEFAULT_DEPENDENCY_PROBES } from './probes/index.js';
import { parseDependencySpec } from './spec.js';

/** Settings of the dependency checker, shared by {@link runDependencyChecks} and the handler. */
export interface DependencyCheckerOptions {
  /** The worker's environment, for `${NAME}` references. @defaultValue `process.env` */
  env?: Readonly<Record<string, string | undefined>>;
  /** Resolves `${NAME}` references. @defaultValue a lookup over `env` (empty values count as unset) */
  lookup?: Lookup;
  /** The dependency types, by `type`. Add one to extend the checker. @defaultValue {@link DEFAULT_DEPENDENCY_PROBES} */
  probes?: readonly DependencyProbe[];
  /** @defaultValue a silent logger */
  logger?: Logger;
}

/** Options of one {@link runDependencyChecks} call. */
export interface RunDependencyChecksOptions extends DependencyCheckerOptions {
  /** Aborting stops every probe and rejects with the signal's reason (the worker is shutting down). */
  signal?: AbortSignal;
  /**
   * When the result is due (the orchestrator's gate deadline). Attempts still running then are
   * unhealthy, no retry starts after it, and the execution status is TIMED_OUT. Ignored once past.
   * @defaultValue none
   */
  deadline?: Date;
}

/** The health of one dependency, shaped like `DependencyStatus`. */
export interface DependencyStatusOutcome {
  name: string;
  /** `http`, `tcp`, `postgres`, `redis`, `mysql`, or an added probe's type. */
  type: string;
  /** The service that depends on it; empty when the spec does not say. */
  service: string;
  healthy: boolean;
  /** Duration of the last attempt, in milliseconds. */
  latencyMs: number;
  /** One line; never a secret. */
  message: string;
  critical: boolean;
  attempts: number;
}

/** The outcome of a dependency check run, shaped like the `dependency:check:completed` payload. */
export interface DependencyOutcome {
  result: DependencyCheckResult;
  dependencies: DependencyStatusOutcome[];
  executionStatus: ExecutionStatus;
  message: string;
  durationMs: number;
}

type Dependency = DependencySettings & { type: string };

interface Shared {
  lookup: Lookup;
  logger: Logger;
  probes: Map<string, DependencyProbe>;
  signal?: AbortSignal;
  deadline?: Date;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
}

const MAX_SUMMARY_LENGTH = 2000;

/**
 * Probes every dependency of a `dependency:check:started` spec in parallel, each attempt within
 * its time limit, retrying an unhealthy one a bounded number of times with a pause. The verdict:
 * ALL_UNHEALTHY when a critical dependency, or every dependency, is unhealthy (the orchestrator
 * fails the deployment); SOME_DEGRADED when only non-critical ones are; else ALL_HEALTHY. A
 * malformed spec gives ERRORED + ALL_UNHEALTHY naming the field. Rejects only when `signal` aborts.
 */
export async function runDependencyChecks(
  spec: unknown,
  options: RunDependencyChecksOptions = {},
): Promise<DependencyOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const probes = options.probes ?? DEFAULT_DEPENDENCY_PROBES;
  const parsed = parseDependencySpec(spec, probes);
  if ('problem' in parsed) {
    return {
      result: DependencyCheckResult.ALL_UNHEALTHY,
      dependencies: [],
      executionStatus: ExecutionStatus.ERRORED,
      message: `invalid dependency spec: ${parsed.problem}`,
      durationMs: elapsed(),
    };
  }
  const { dependencies } = parsed.spec;
  if (dependencies.length === 0) {
    return {
      result: DependencyCheckResult.ALL_HEALTHY,
      dependencies: [],
      executionStatus: ExecutionStatus.SUCCEEDED,
      message: 'no dependencies to check',
      durationMs: elapsed(),
    };
  }
  options.signal?.throwIfAborted();
  const env = options.env ?? process.env;
  const shared: Shared = {
    lookup: options.lookup ?? planLookup(env as NodeJS.ProcessEnv),
    logger: options.logger ?? silentLogger(),
    probes: new Map(probes.map((p) => [p.type, p])),
    signal: options.signal,
    deadline: options.deadline,
    timeoutMs: parsed.spec.timeoutMs,
    retries: parsed.spec.retries,
    retryDelayMs: parsed.spec.retryDelayMs,
  };
  const runs = Promise.all(dependencies.map((dependency) => checkDependency(dependency, shared)));
  const results = options.signal ? await untilAborted(runs, options.signal) : await runs;
  const statuses = results.map((r) => r.status);
  const unhealthy = statuses.filter((s) => !s.healthy);
  const criticalDown = unhealthy.filter((s) => s.critical);
  let result: DependencyCheckResult;
  let message: string;
  if (unhealthy.length === 0) {
    result = DependencyCheckResult.ALL_HEALTHY;
    message = `all ${statuses.length} dependenc${statuses.length === 1 ? 'y' : 'ies'} healthy`;
  } else {
    result =
      criticalDown.length > 0 || unhealthy.length === statuses.length
        ? DependencyCheckResult.ALL_UNHEALTHY
        : DependencyCheckResult.SOME_DEGRADED;
    const list = unhealthy.map((s) => `${s.name}${s.critical ? ' (critical)' : ''}: ${s.message}`).join('; ');
    message = `${unhealthy.length} of ${statuses.length} dependencies unhealthy: ${list}`;
  }
  const cutByDeadline = results.some((r) => r.cutByDeadline);
  if (cutByDeadline) message = `deadline reached before every dependency answered; ${message}`;
  return {
    result,
    dependencies: statuses,
    executionStatus: cutByDeadline ? ExecutionStatus.TIMED_OUT : ExecutionStatus.SUCCEEDED,
    message: message.length > MAX_SUMMARY_LENGTH ? `${message.slice(0, MAX_SUMMARY_LENGTH - 3)}...` : message,
    durationMs: elapsed(),
  };
}

async function checkDependency(
  dependency: Dependency,
  shared: Shared,
): Promise<{ status: DependencyStatusOutcome; cutByDeadline: boolean }> {
  const probe = shared.probes.get(dependency.type)!;
  const timeoutMs = dependency.timeoutMs ?? shared.timeoutMs;
  const retries = dependency.retries ?? shared.retries;
  const retryDelayMs = dependency.retryDelayMs ?? shared.retryDelayMs;
  const secrets = new SecretMask();
  let attempts = 0;
  let verdict: ProbeVerdict;
  let latencyMs: number;
  let cutByDeadline = false;
  for (;;) {
    attempts += 1;
    const untilDeadline = shared.deadline ? shared.deadline.getTime() - Date.now() : Number.POSITIVE_INFINITY;
    const deadlineFirst = untilDeadline > 0 && untilDeadline < timeoutMs;
    const budget = deadlineFirst ? Math.max(1, Math.floor(untilDeadline)) : timeoutMs;
    const started = performance.now();
    const attempt = await attemptOnce(probe, dependency, budget, secrets, shared);
    latencyMs = Math.round(performance.now() - started);
    verdict = attempt.verdict;
    if (attempt.timedOut && deadlineFirst) {
      verdict = { healthy: false, message: `no answer before the gate deadline (${budget} ms)` };
      cutByDeadline = true;
      break;
    }
    if (verdict.healthy || attempts > retries || !attempt.retryable) break;
    // A retry that would start after the deadline cannot change the published result.
    const remaining = shared.deadline ? shared.deadline.getTime() - Date.now() : Number.POSITIVE_INFINITY;
    if (remaining > 0 && remaining <= retryDelayMs) break;
    try {
      await delay(retryDelayMs, undefined, { signal: shared.signal });
    } catch {
      break; // Shutting down: runDependencyChecks rejects with the signal's reason.
    }
  }
  const message =
    verdict.healthy || attempts === 1 ? verdict.message : `${verdict.message} (after ${attempts} attempts)`;
  const status: DependencyStatusOutcome = {
    name: dependency.name,
    type: dependency.type,
    service: dependency.service ?? '',
    healthy: verdict.healthy,
    latencyMs,
    message: oneLine(secrets.mask(message)),
    critical: dependency.critical ?? true,
    attempts,
  };
  shared.logger.debug(
    { dependency: status.name, type: status.type, healthy: status.healthy, attempts, latency_ms: latencyMs },
    'dependency checked',
  );
  return { status, cutByDeadline };
}

async function attemptOnce(
  probe: DependencyProbe,
  dependency: Dependency,
  budget: number,
  secrets: SecretMask,
  shared: Shared,
): Promise<{ verdict: ProbeVerdict; timedOut: boolean; retryable: boolean }> {
  const controller = new AbortController();
  const stop = () => controller.abort(shared.signal?.reason);
  shared.signal?.addEventListener('abort', stop, { once: true });
  const context: ProbeContext = {
    signal: controller.signal,
    timeoutMs: budget,
    logger: shared.logger,
    resolve: (value) =>
      expandReferences(value, (name) => {
        const resolved = shared.lookup(name);
        if (resolved !== undefined) secrets.remember(resolved);
        return resolved;
      }),
  };
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let retryable = true;
  const timeout = new Promise<ProbeVerdict>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve({ healthy: false, message: `no answer within ${budget} ms` });
    }, budget);
  });
  try {
    const verdict = await Promise.race([
      Promise.resolve()
        .then(() => probe.probe(dependency, context))
        .catch((error: unknown): ProbeVerdict => {
          // A missing variable or a wrong setting stays wrong on the next attempt.
          retryable = !(error instanceof ConfigError || (error instanceof ProbeFailure && !error.retryable));
          return { healthy: false, message: describeProbeError(error) };
        }),
      timeout,
    ]);
    return { verdict, timedOut, retryable: timedOut || retryable };
  } finally {
    clearTimeout(timer);
    shared.signal?.removeEventListener('abort', stop);
    // Releases whatever a timed-out probe still holds (sockets, clients).
    controller.abort();
  }
}

function describeProbeError(error: unknown): string {
  if (error instanceof ProbeFailure || error instanceof MateriError) return error.message;
  return describeCause(error);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
