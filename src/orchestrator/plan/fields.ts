import { z } from 'zod';

/**
 * Zod schemas of the kinds of value a plan holds, shared by the plan schema and the providers'
 * settings. Strings may hold `${NAME}` references; a check that needs the real value (a URL's
 * scheme) is skipped for a string that still holds one, since it is resolved only where it is used.
 *
 * @module
 */

const REFERENCE = /\$\{[A-Za-z_][A-Za-z0-9_]*\}/;

/** Whether a string still holds a `${NAME}` reference. */
export function holdsReference(text: string): boolean {
  return REFERENCE.test(text);
}

/** A string with at least one non-blank character. */
export const text = () => z.string().trim().min(1, 'must not be empty');

/** An environment variable name. */
export const envName = () =>
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)');

/** A URL whose scheme is one of `schemes`, or a string holding a `${NAME}` reference. */
export const urlField = (schemes: readonly string[]) =>
  text().refine(
    (value) => {
      if (holdsReference(value)) return true;
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `must be a ${schemes.map((s) => `${s}://`).join(' or ')} URL` },
  );

/** A TCP port: a number, or a string of digits (what a `${NAME}` var expands to). */
export const port = () =>
  z.preprocess(
    (value) => (typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value),
    z.number().int().min(1).max(65535),
  );

/** HTTP header names and values. */
export const headers = () =>
  z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name'), z.string());

/** Environment variables given to a process. */
export const environment = () => z.record(envName(), z.string());
