import { z } from 'zod';
import type { ValidationCheck } from './check.js';

/** Time limit of a check when neither the item nor the spec sets one. */
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;

/** A parsed validation spec: the shared settings and, per check key, its items. */
export interface ValidationSpec {
  /** Time limit of each check, in milliseconds. @defaultValue 10 000 */
  timeoutMs: number;
  items: Map<string, unknown[]>;
}

const schemas = new WeakMap<readonly ValidationCheck[], z.ZodType<Record<string, unknown>>>();

/** The zod schema of a validation spec for a set of checks (strict: unknown keys are errors). */
export function validationSpecSchema(checks: readonly ValidationCheck[]): z.ZodType<Record<string, unknown>> {
  let schema = schemas.get(checks);
  if (!schema) {
    const shape: Record<string, z.ZodType> = {
      timeoutMs: z.number().int().positive().max(3_600_000).optional(),
    };
    for (const check of checks) shape[check.key] = z.array(check.item).optional();
    schema = z.strictObject(shape) as z.ZodType<Record<string, unknown>>;
    schemas.set(checks, schema);
  }
  return schema;
}

/** Parses a spec; returns the reason (naming the field) when it is malformed. */
export function parseValidationSpec(
  spec: unknown,
  checks: readonly ValidationCheck[],
): { spec: ValidationSpec } | { problem: string } {
  const parsed = validationSpecSchema(checks).safeParse(spec);
  if (!parsed.success) return { problem: describeSpecIssue(firstIssue(parsed.error.issues)) };
  const items = new Map<string, unknown[]>();
  for (const check of checks) items.set(check.key, (parsed.data[check.key] as unknown[] | undefined) ?? []);
  return {
    spec: { timeoutMs: (parsed.data.timeoutMs as number | undefined) ?? DEFAULT_CHECK_TIMEOUT_MS, items },
  };
}

/** An unknown setting is reported first: a misspelt key also makes the real one look missing. */
function firstIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  return issues.find((issue) => issue.code === 'unrecognized_keys') ?? issues[0]!;
}

/** One line naming the field of a zod issue, e.g. `images[0].auth.user: unknown setting`. */
export function describeSpecIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const fields = issue.keys.map((key) => formatPath([...issue.path, key]));
    return `${fields.join(', ')}: unknown setting${fields.length > 1 ? 's' : ''}`;
  }
  const where = formatPath(issue.path);
  const message =
    issue.code === 'invalid_type' && issue.message.endsWith('received undefined')
      ? 'is required'
      : issue.message;
  return where ? `${where}: ${message}` : message;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}
