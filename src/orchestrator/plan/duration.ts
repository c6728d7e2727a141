import { z } from 'zod';
import { BadInputError } from '../../errors/index.js';
import { durationMs } from '../../runtime/duration.js';

/** The longest duration a plan may hold: event fields carry durations as int32 milliseconds. */
export const MAX_DURATION_MS = 2_147_483_647;

/**
 * Milliseconds of a plan duration: a number of milliseconds (`1500`, also as a string) or a number
 * with a unit (`500ms`, `30s`, `1.5m`, `1h`). Throws {@link BadInputError} naming the value.
 */
export function parseDuration(value: string | number): number {
  // A plan's number of milliseconds must be whole.
  const ms = typeof value === 'number' && !Number.isInteger(value) ? undefined : durationMs(value);
  if (ms === undefined)
    throw new BadInputError(
      `invalid duration ${JSON.stringify(value)} (use 500ms, 30s, 5m, 1h or a number of milliseconds)`,
    );
  if (ms > MAX_DURATION_MS)
    throw new BadInputError(`duration ${JSON.stringify(value)} is longer than 24 days`);
  return ms;
}

/** A short human form of milliseconds, the inverse of {@link parseDuration} for whole units. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A zod schema for a plan duration; its output is milliseconds. */
export function durationSchema() {
  return z
    .union([z.number(), z.string()], { error: 'expected a duration like 500ms, 30s, 5m or 1h' })
    .transform((value, ctx) => {
      try {
        return parseDuration(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message, input: value });
        return z.NEVER;
      }
    });
}
