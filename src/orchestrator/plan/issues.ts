import type { z } from 'zod';
import type { PlanIssue } from './errors.js';

/** A path into the plan document, as zod and the YAML library give it. */
export type DocumentPath = readonly PropertyKey[];

/** `['stages', 1, 'provider', 'type']` → `stages[1].provider.type`. */
export function formatPath(path: DocumentPath): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A problem at a path, before its line is known. */
export interface PathIssue {
  path: DocumentPath;
  message: string;
}

/**
 * One-line messages for zod issues. Values are echoed only where they cannot be secrets (enum
 * choices, names, types); a string field that fails a custom check (a URL, a token) is never echoed.
 */
export function describeZodIssue(issue: z.core.$ZodIssue): PathIssue[] {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: [...issue.path, key], message: 'unknown key' }));
    case 'invalid_union': {
      const discriminator = (issue as { discriminator?: string }).discriminator;
      const options = (issue as { options?: unknown[] }).options;
      if (discriminator && options) {
        const got = isRecord(input) ? input[discriminator] : undefined;
        return [
          {
            path: issue.path,
            message:
              got === undefined
                ? `is required (one of ${options.join('|')})`
                : `expected one of ${options.join('|')}, got ${describeValue(got)}`,
          },
        ];
      }
      return [
        {
          path: issue.path,
          message: issue.message === 'Invalid input' ? 'has an invalid value' : issue.message,
        },
      ];
    }
    case 'invalid_type':
      if (input === undefined) return [{ path: issue.path, message: 'is required' }];
      return [
        { path: issue.path, message: `expected ${article(issue.expected)}, got ${describeValue(input)}` },
      ];
    case 'invalid_value': {
      const values = issue.values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
      return [
        {
          path: issue.path,
          message:
            values.length === 1
              ? `expected ${JSON.stringify(issue.values[0])}, got ${describeValue(input)}`
              : `expected one of ${values.join('|')}, got ${describeValue(input)}`,
        },
      ];
    }
    case 'invalid_format': {
      const message = issue.message.startsWith('Invalid') ? `has an invalid ${issue.format}` : issue.message;
      const shown = typeof input === 'string' && input.length <= 80 ? `, got ${JSON.stringify(input)}` : '';
      return [{ path: issue.path, message: `${message}${shown}` }];
    }
    case 'too_small':
      return [
        {
          path: issue.path,
          message: issue.message.startsWith('Too') ? bound('at least', issue) : issue.message,
        },
      ];
    case 'too_big':
      return [
        {
          path: issue.path,
          message: issue.message.startsWith('Too') ? bound('at most', issue) : issue.message,
        },
      ];
    case 'not_multiple_of':
      return [{ path: issue.path, message: `must be a multiple of ${issue.divisor}` }];
    default:
      return [{ path: issue.path, message: issue.message }];
  }
}

function bound(
  word: string,
  issue: { origin: string; minimum?: unknown; maximum?: unknown; inclusive?: boolean },
): string {
  const limit = Number(issue.minimum ?? issue.maximum);
  if (issue.origin === 'array') return `must have ${word} ${limit} item${limit === 1 ? '' : 's'}`;
  if (issue.origin === 'string') return `must have ${word} ${limit} character${limit === 1 ? '' : 's'}`;
  if (issue.origin === 'number' || issue.origin === 'int') {
    const exclusive = issue.inclusive === false;
    return exclusive
      ? `must be ${word === 'at least' ? 'more' : 'less'} than ${limit}`
      : `must be ${word} ${limit}`;
  }
  return `must be ${word} ${limit}`;
}

function article(expected: string): string {
  if (expected === 'object') return 'a mapping';
  if (expected === 'array') return 'a list';
  if (expected === 'int') return 'an integer';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** A short description of a value of the wrong type, e.g. `number 3`, `a list`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return `${typeof value} ${String(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Sorts issues by line (unknown lines last), keeping the order of issues on the same line. */
export function sortByLine(issues: PlanIssue[]): PlanIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort(
      (a, b) =>
        (a.issue.line ?? Number.MAX_SAFE_INTEGER) - (b.issue.line ?? Number.MAX_SAFE_INTEGER) ||
        a.index - b.index,
    )
    .map(({ issue }) => issue);
}
