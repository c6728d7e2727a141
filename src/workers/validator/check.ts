import { z } from 'zod';
import type { Logger } from '../../runtime/logging.js';

/** Settings every check item accepts besides its own. */
export interface CheckItemSettings {
  /**
   * Whether a failure blocks the deployment (FAILED) or only warns (WARNING).
   * @defaultValue true
   */
  blocking?: boolean;
  /** Time limit of this item's check, in milliseconds. @defaultValue the spec's `timeoutMs` */
  timeoutMs?: number;
}

/** Zod shape of {@link CheckItemSettings}, spread into every check's item schema. */
export const checkItemSettings = {
  blocking: z.boolean().optional(),
  timeoutMs: z.number().int().positive().max(3_600_000).optional(),
};

/** What a check gets besides its item. */
export interface CheckContext {
  /** Aborted when the check times out or the worker shuts down; close connections on it. */
  readonly signal: AbortSignal;
  /** The time limit of this check, for client settings such as connect timeouts. */
  readonly timeoutMs: number;
  /**
   * Expands `${NAME}` references in a setting from the worker's environment. Throws naming the
   * variable (`${NAME} is not set`) when one is missing. Resolved values are treated as secrets:
   * they are masked in the check's message.
   */
  resolve(value: string): string;
  /** The worker's environment, for checks that inspect it (the `process` env source). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** DNS servers (`host` or `host:port`) for SRV lookups; empty means the system's resolvers. */
  readonly dnsServers: readonly string[];
  readonly logger: Logger;
}

/** The outcome of one check item. */
export interface CheckVerdict {
  passed: boolean;
  /** One line saying what was found. Never a secret value. */
  message: string;
}

/**
 * One kind of validation check: the extension point of the validator.
 *
 * The spec key `key` holds an array of items; each item is validated with `item` (a strict zod
 * object that spreads {@link checkItemSettings}) and run by `run`. Results are named by `name` and
 * carry `kind`. A check either returns a verdict or throws: a thrown error fails the item with
 * its message, so checks need not catch connection errors themselves.
 *
 * @example
 * const certificates = defineValidationCheck({
 *   key: 'certificates', kind: 'certificate',
 *   item: z.strictObject({ host: z.string(), ...checkItemSettings }),
 *   name: (item) => `certificate:${item.host}`,
 *   run: async (item, context) => ({ passed: true, message: `${item.host} certificate valid` }),
 * });
 * runValidation(spec, { checks: [...DEFAULT_VALIDATION_CHECKS, certificates] });
 */
export interface ValidationCheck<Item extends CheckItemSettings = CheckItemSettings> {
  /** Key of the spec that lists this check's items, e.g. `images`. */
  readonly key: string;
  /** `kind` of the results, e.g. `image`. */
  readonly kind: string;
  /** Schema of one item. Unknown settings should be rejected (`z.strictObject`). */
  readonly item: z.ZodType<Item>;
  /** Result name of an item, e.g. `image:api`. Duplicates get a `#2`, `#3` suffix. */
  name(item: Item): string;
  run(item: Item, context: CheckContext): Promise<CheckVerdict>;
}

/** Erases a check's item type so checks of different kinds fit one list. */
export function defineValidationCheck<Item extends CheckItemSettings>(
  check: ValidationCheck<Item>,
): ValidationCheck {
  return check as unknown as ValidationCheck;
}

/** Thrown by a check to fail its item with exactly this message. */
export class CheckFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckFailure';
  }
}
