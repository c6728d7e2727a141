import { z } from 'zod';
import type { DependencyProbe, DependencySettings } from './probe.js';

/** Time limit of one attempt when neither the dependency nor the spec sets one. */
export const DEFAULT_DEPENDENCY_TIMEOUT_MS = 5000;
/** Attempts after the first when neither the dependency nor the spec sets them. */
export const DEFAULT_DEPENDENCY_RETRIES = 2;
/** Pause between attempts when neither the dependency nor the spec sets it. */
export const DEFAULT_DEPENDENCY_RETRY_DELAY_MS = 500;

/** A parsed dependency spec. */
export interface DependencySpec {
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  dependencies: (DependencySettings & { type: string })[];
}

const schemas = new WeakMap<readonly DependencyProbe[], z.ZodType<Record<string, unknown>>>();

/** The zod schema of a dependency spec for a set of probes (strict: unknown keys are errors). */
export function dependencySpecSchema(probes: readonly DependencyProbe[]): z.ZodType<Record<string, unknown>> {
  let schema = schemas.get(probes);
  if (!schema) {
    const dependency = z.discriminatedUnion(
      'type',
      probes.map((p) => p.item) as unknown as [
        z.core.$ZodTypeDiscriminable,
        ...z.core.$ZodTypeDiscriminable[],
      ],
    );
    schema = z.strictObject({
      timeoutMs: z.number().int().positive().max(600_000).optional(),
      retries: z.number().int().min(0).max(10).optional(),
      retryDelayMs: z.number().int().min(0).max(60_000).optional(),
      dependencies: z.array(dependency).optional(),
    }) as z.ZodType<Record<string, unknown>>;
    schemas.set(probes, schema);
  }
  return schema;
}

/** Parses a spec; returns the reason (naming the field) when it is malformed. */
export function parseDependencySpec(
  spec: unknown,
  probes: readonly DependencyProbe[],
): { spec: DependencySpec } | { problem: string } {
  const parsed = dependencySpecSchema(probes).safeParse(spec);
  if (!parsed.success) return { problem: describeSpecIssue(firstIssue(parsed.error.issues)) };
  const data = parsed.data as Partial<DependencySpec>;
  return {
    spec: {
      timeoutMs: data.timeoutMs ?? DEFAULT_DEPENDENCY_TIMEOUT_MS,
      retries: data.retries ?? DEFAULT_DEPENDENCY_RETRIES,
      retryDelayMs: data.retryDelayMs ?? DEFAULT_DEPENDENCY_RETRY_DELAY_MS,
      dependencies: data.dependencies ?? [],
    },
  };
}

/** An unknown setting is reported first: a misspelt key also makes the real one look missing. */
function firstIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  return issues.find((issue) => issue.code === 'unrecognized_keys') ?? issues[0]!;
}

/** One line naming the field of a zod issue, e.g. `dependencies[1].url: …`. */
export function describeSpecIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const fields = issue.keys.map((key) => formatPath([...issue.path, key]));
    return `${fields.join(', ')}: unknown setting${fields.length > 1 ? 's' : ''}`;
  }
  // zod's discriminated union names the known values in `options` when the type matches none.
  const known = (issue as { options?: unknown }).options;
  if (issue.code === 'invalid_union' && Array.isArray(known)) {
    return `${formatPath(issue.path)}: must be one of ${known.join(', ')}`;
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
