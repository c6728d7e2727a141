import { performance } from 'node:perf_hooks';
import { untilAborted } from '../../bus/backoff.js';
import { describeCause, MateriError } from '../../errors/index.js';
import { CheckStatus, ExecutionStatus, ValidationResult } from '../../events/index.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { expandReferences, type Lookup, planLookup } from '../../runtime/references.js';
import { SecretMask } from '../../runtime/secrets.js';
import {
  type CheckContext,
  CheckFailure,
  type CheckItemSettings,
  type CheckVerdict,
  type ValidationCheck,
} from './check.js';
import { DEFAULT_VALIDATION_CHECKS } from './checks/index.js';
import { parseValidationSpec } from './spec.js';

/** Settings of the validator, shared by {@link runValidation} and the handler. */
export interface ValidatorOptions {
  /**
   * The worker's environment: the `process` env source reads it, and `${NAME}` references are
   * resolved from it unless `lookup` is given. @defaultValue `process.env`
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Resolves `${NAME}` references. @defaultValue a lookup over `env` (empty values count as unset) */
  lookup?: Lookup;
  /** The checks, by spec key. Add one to extend the validator. @defaultValue {@link DEFAULT_VALIDATION_CHECKS} */
  checks?: readonly ValidationCheck[];
  /** DNS servers (`ip` or `ip:port`) for SRV lookups. @defaultValue the system's resolvers */
  dnsServers?: readonly string[];
  /** @defaultValue a silent logger */
  logger?: Logger;
}

/** Options of one {@link runValidation} call. */
export interface RunValidationOptions extends ValidatorOptions {
  /** Aborting stops every check and rejects with the signal's reason (the worker is shutting down). */
  signal?: AbortSignal;
  /**
   * When the result is due (the orchestrator's gate deadline). Checks still running then are
   * failed and the execution status is TIMED_OUT. Ignored once past. @defaultValue none
   */
  deadline?: Date;
}

/** The outcome of one check item, shaped like `ValidationCheckResult`. */
export interface ValidationCheckOutcome {
  /** e.g. `image:api`, `migrations:main-db`. */
  name: string;
  /** e.g. `image`, `migrations`, `env`, `discovery`. */
  kind: string;
  status: CheckStatus;
  /** One line; never a secret value. */
  message: string;
  durationMs: number;
}

/** The outcome of a validation run, shaped like the `validation:completed` payload. */
export interface ValidationOutcome {
  result: ValidationResult;
  checks: ValidationCheckOutcome[];
  executionStatus: ExecutionStatus;
  message: string;
  durationMs: number;
}

interface PlannedCheck {
  check: ValidationCheck;
  item: CheckItemSettings;
  name: string;
  blocking: boolean;
  timeoutMs: number;
}

const MAX_SUMMARY_LENGTH = 2000;

/**
 * Runs the checks a `validation:started` spec asks for, all at once, each within its time limit.
 * Never throws for a bad spec or a failing check: a malformed spec gives ERRORED + FAILED naming
 * the field, and one check failing or hanging never hides the others' results. The verdict is
 * FAILED when a blocking check failed, WARNINGS when only non-blocking ones did, else PASSED.
 * Rejects only when `signal` aborts.
 */
export async function runValidation(
  spec: unknown,
  options: RunValidationOptions = {},
): Promise<ValidationOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const checks = options.checks ?? DEFAULT_VALIDATION_CHECKS;
  const parsed = parseValidationSpec(spec, checks);
  if ('problem' in parsed) {
    return {
      result: ValidationResult.FAILED,
      checks: [],
      executionStatus: ExecutionStatus.ERRORED,
      message: `invalid validation spec: ${parsed.problem}`,
      durationMs: elapsed(),
    };
  }
  const planned = planChecks(checks, parsed.spec.items, parsed.spec.timeoutMs);
  if (planned.length === 0) {
    return {
      result: ValidationResult.PASSED,
      checks: [],
      executionStatus: ExecutionStatus.SUCCEEDED,
      message: 'no checks configured',
      durationMs: elapsed(),
    };
  }

  options.signal?.throwIfAborted();
  const env = options.env ?? process.env;
  const shared: SharedContext = {
    env,
    lookup: options.lookup ?? planLookup(env as NodeJS.ProcessEnv),
    dnsServers: options.dnsServers ?? [],
    logger: options.logger ?? silentLogger(),
    signal: options.signal,
    deadline: options.deadline,
  };
  const runs = Promise.all(planned.map((p) => runCheck(p, shared)));
  const results = options.signal ? await untilAborted(runs, options.signal) : await runs;

  const outcomes = results.map((r) => r.outcome);
  const failed = outcomes.filter((o) => o.status === CheckStatus.FAILED);
  const warnings = outcomes.filter((o) => o.status === CheckStatus.WARNING);
  const result =
    failed.length > 0
      ? ValidationResult.FAILED
      : warnings.length > 0
        ? ValidationResult.WARNINGS
        : ValidationResult.PASSED;
  const cutByDeadline = results.some((r) => r.cutByDeadline);
  let message: string;
  if (result === ValidationResult.PASSED) {
    message = `all ${outcomes.length} check${outcomes.length === 1 ? '' : 's'} passed`;
  } else if (result === ValidationResult.FAILED) {
    message = `${failed.length} of ${outcomes.length} checks failed: ${listProblems(failed)}`;
    if (warnings.length > 0) message += `; warnings: ${listProblems(warnings)}`;
  } else {
    message = `passed with ${warnings.length} warning${warnings.length === 1 ? '' : 's'}: ${listProblems(warnings)}`;
  }
  if (cutByDeadline) message = `deadline reached before every check finished; ${message}`;
  return {
    result,
    checks: outcomes,
    executionStatus: cutByDeadline ? ExecutionStatus.TIMED_OUT : ExecutionStatus.SUCCEEDED,
    message: message.length > MAX_SUMMARY_LENGTH ? `${message.slice(0, MAX_SUMMARY_LENGTH - 3)}...` : message,
    durationMs: elapsed(),
  };
}

function planChecks(
  checks: readonly ValidationCheck[],
  items: Map<string, unknown[]>,
  defaultTimeoutMs: number,
): PlannedCheck[] {
  const planned: PlannedCheck[] = [];
  const seen = new Map<string, number>();
  for (const check of checks) {
    for (const raw of items.get(check.key) ?? []) {
      const item = raw as CheckItemSettings;
      const base = check.name(item);
      const count = (seen.get(base) ?? 0) + 1;
      seen.set(base, count);
      planned.push({
        check,
        item,
        name: count === 1 ? base : `${base}#${count}`,
        blocking: item.blocking ?? true,
        timeoutMs: item.timeoutMs ?? defaultTimeoutMs,
      });
    }
  }
  return planned;
}

interface SharedContext {
  env: Readonly<Record<string, string | undefined>>;
  lookup: Lookup;
  dnsServers: readonly string[];
  logger: Logger;
  signal?: AbortSignal;
  deadline?: Date;
}

async function runCheck(
  planned: PlannedCheck,
  shared: SharedContext,
): Promise<{ outcome: ValidationCheckOutcome; cutByDeadline: boolean }> {
  const started = performance.now();
  const controller = new AbortController();
  const stop = () => controller.abort(shared.signal?.reason);
  shared.signal?.addEventListener('abort', stop, { once: true });

  const untilDeadline = shared.deadline ? shared.deadline.getTime() - Date.now() : Number.POSITIVE_INFINITY;
  const deadlineFirst = untilDeadline > 0 && untilDeadline < planned.timeoutMs;
  const budget = deadlineFirst ? Math.max(1, Math.floor(untilDeadline)) : planned.timeoutMs;

  const secrets = new SecretMask();
  const context: CheckContext = {
    signal: controller.signal,
    timeoutMs: budget,
    env: shared.env,
    dnsServers: shared.dnsServers,
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
  const timeout = new Promise<CheckVerdict>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve({
        passed: false,
        message: deadlineFirst
          ? `did not finish before the gate deadline (${budget} ms)`
          : `timed out after ${budget} ms`,
      });
    }, budget);
  });
  let verdict: CheckVerdict;
  try {
    verdict = await Promise.race([
      Promise.resolve()
        .then(() => planned.check.run(planned.item, context))
        .catch((error: unknown): CheckVerdict => ({ passed: false, message: describeCheckError(error) })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
    shared.signal?.removeEventListener('abort', stop);
    // Releases whatever a timed-out check still holds (sockets, database connections).
    controller.abort();
  }

  const status = verdict.passed
    ? CheckStatus.PASSED
    : planned.blocking
      ? CheckStatus.FAILED
      : CheckStatus.WARNING;
  const outcome: ValidationCheckOutcome = {
    name: planned.name,
    kind: planned.check.kind,
    status,
    message: oneLine(secrets.mask(verdict.message)),
    durationMs: Math.round(performance.now() - started),
  };
  shared.logger.debug(
    { check: outcome.name, status: CheckStatus[status], duration_ms: outcome.durationMs },
    'validation check finished',
  );
  return { outcome, cutByDeadline: timedOut && deadlineFirst };
}

/** Our own errors carry a finished message; others (drivers, sockets) get their code prepended. */
function describeCheckError(error: unknown): string {
  if (error instanceof CheckFailure || error instanceof MateriError) return error.message;
  return describeCause(error);
}

function listProblems(outcomes: ValidationCheckOutcome[]): string {
  return outcomes.map((o) => `${o.name}: ${o.message}`).join('; ');
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
