import { z } from 'zod';
import { BadInputError } from '../../errors/index.js';

/** The longest duration a plan may hold: event fields carry durations as int32 milliseconds. */
export const MAX_DURATION_MS = 2_147_483_647;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * Milliseconds of a plan duration: a number of milliseconds (`1500`, also as a string) or a number
 * with a unit (`500ms`, `30s`, `1.5m`, `1h`). Throws {@link BadInputError} naming the value.
 */
export function parseDuration(value: string | number): number {
  const ms = toMilliseconds(value);
  if (ms === undefined)
    throw new BadInputError(
      `invalid duration ${JSON.stringify(value)} (use 500ms, 30s, 5m, 1h or a number of milliseconds)`,
    );
  if (ms > MAX_DURATION_MS)
    throw new BadInputError(`duration ${JSON.stringify(value)} is longer than 24 days`);
  return ms;
}

function toMilliseconds(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const match = DURATION.exec(text);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
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
