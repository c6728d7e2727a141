import { z } from 'zod';
import type { Logger } from '../../runtime/logging.js';

/** Settings every dependency accepts besides its type's own. */
export interface DependencySettings {
  /** Names the dependency in the result, e.g. `postgres-main`. */
  name: string;
  /** The service that depends on it. @defaultValue empty */
  service?: string;
  /** An unhealthy critical dependency fails the deployment. @defaultValue true */
  critical?: boolean;
  /** Time limit of one attempt, in milliseconds. @defaultValue the spec's `timeoutMs` */
  timeoutMs?: number;
  /** Attempts after the first when it is unhealthy. @defaultValue the spec's `retries` */
  retries?: number;
  /** Pause between attempts, in milliseconds. @defaultValue the spec's `retryDelayMs` */
  retryDelayMs?: number;
}

/** Zod shape of {@link DependencySettings}, spread into every probe's item schema. */
export const dependencySettings = {
  name: z.string().min(1),
  service: z.string().optional(),
  critical: z.boolean().optional(),
  timeoutMs: z.number().int().positive().max(600_000).optional(),
  retries: z.number().int().min(0).max(10).optional(),
  retryDelayMs: z.number().int().min(0).max(60_000).optional(),
};

/** What a probe gets besides its dependency. */
export interface ProbeContext {
  /** Aborted when the attempt times out or the worker shuts down; close connections on it. */
  readonly signal: AbortSignal;
  /** The time limit of this attempt, for client settings such as connect timeouts. */
  readonly timeoutMs: number;
  /**
   * Expands `${NAME}` references from the worker's environment; throws `${NAME} is not set` when
   * one is missing. Resolved values are masked in the dependency's message.
   */
  resolve(value: string): string;
  readonly logger: Logger;
}

/** The outcome of one attempt. */
export interface ProbeVerdict {
  healthy: boolean;
  /** One line; never a secret (use `redactUrl` for URLs). */
  message: string;
}

/**
 * One type of dependency: the extension point of the dependency checker.
 *
 * `item` is a strict zod object with `type: z.literal(<type>)` that spreads
 * {@link dependencySettings}; it joins the discriminated union of the spec's `dependencies`.
 * `probe` makes one attempt and returns a verdict or throws (a thrown error is an unhealthy
 * attempt with the error's message). Retries, time limits and the verdict policy are the
 * checker's job, not the probe's.
 *
 * @example
 * const amqp = defineDependencyProbe({
 *   type: 'amqp',
 *   item: z.strictObject({ type: z.literal('amqp'), url: z.string(), ...dependencySettings }),
 *   probe: async (item, context) => ({ healthy: true, message: 'connection opened' }),
 * });
 * runDependencyChecks(spec, { probes: [...DEFAULT_DEPENDENCY_PROBES, amqp] });
 */
export interface DependencyProbe<
  Item extends DependencySettings & { type: string } = DependencySettings & { type: string },
> {
  /** Value of the item's `type`, e.g. `postgres`. */
  readonly type: string;
  readonly item: z.ZodType<Item>;
  probe(item: Item, context: ProbeContext): Promise<ProbeVerdict>;
}

/** Erases a probe's item type so probes of different types fit one list. */
export function defineDependencyProbe<Item extends DependencySettings & { type: string }>(
  probe: DependencyProbe<Item>,
): DependencyProbe {
  return probe as unknown as DependencyProbe;
}

/**
 * Thrown by a probe to make the attempt unhealthy with exactly this message. `retryable: false`
 * says another attempt cannot help (a setting is wrong), so the checker stops retrying.
 */
export class ProbeFailure extends Error {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable?: boolean } = {}) {
    super(message);
    this.name = 'ProbeFailure';
    this.retryable = options.retryable ?? true;
  }
}
