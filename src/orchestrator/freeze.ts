import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BadInputError, ConfigError, describeCause, EnvironmentFrozenError } from '../errors/index.js';
import { describeZodIssue, formatPath } from './plan/issues.js';

/**
 * Freeze windows: times when an environment takes no deployment unless someone overrides the
 * freeze with a reason. Windows come from a plan's top-level `freeze:` list and from the settings
 * file `MATERI_FREEZE_FILE` (the same list, for a platform team); {@link activeFreeze} says whether
 * one covers a moment. Weekly windows are wall-clock times in an IANA time zone, so they follow
 * daylight saving time.
 *
 * @module
 */

/** Day names of weekly windows, Monday first. */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

interface WindowCommon {
  name?: string;
  /** Environments it freezes; absent = every environment. */
  environments?: string[];
  /** Where it was defined (`plan shop.yaml`, `MATERI_FREEZE_FILE /etc/materi/freeze.yaml`), for messages. */
  source?: string;
}

/** Every week, on `days`, from `from` to `to` (wall clock in `timeZone`); `to` ≤ `from` runs past midnight into the next day. */
export interface WeeklyFreezeWindow extends WindowCommon {
  kind: 'weekly';
  /** The days the window starts on. */
  days: Weekday[];
  /** `HH:MM`. */
  from: string;
  /** `HH:MM`, or `24:00` for the end of the day. */
  to: string;
  /** IANA name. @defaultValue UTC */
  timeZone: string;
}

/** Once, from `start` (inclusive) to `end` (exclusive). */
export interface OneOffFreezeWindow extends WindowCommon {
  kind: 'once';
  /** RFC 3339, as written. */
  start: string;
  end: string;
  startMs: number;
  endMs: number;
}

export type FreezeWindow = WeeklyFreezeWindow | OneOffFreezeWindow;

/** A freeze that covers a moment: which window, until when (the end of every window that joins it), and what it is. */
export interface ActiveFreeze {
  /** The window's name, or a description when it has none. */
  name: string;
  until: Date;
  /** One line: the window's times and where it is defined. */
  reason: string;
}

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;
const RFC_3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?([Zz]|[+-](\d{2}):(\d{2}))$/;

/** Whether `name` is a time zone this Node.js knows (IANA names, `UTC`). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Milliseconds of an RFC 3339 time with an offset, or undefined when it is not one (or names a day that does not exist). */
export function parseRfc3339(value: string): number | undefined {
  const m = RFC_3339.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number) as number[];
  const day = new Date(Date.UTC(y!, mo! - 1, d!));
  if (day.getUTCMonth() !== mo! - 1 || day.getUTCDate() !== d) return undefined;
  if (h! > 23 || mi! > 59 || s! > 60 || Number(m[8] ?? 0) > 23 || Number(m[9] ?? 0) > 59) return undefined;
  const ms = Date.parse(value.replace(' ', 'T'));
  return Number.isFinite(ms) ? ms : undefined;
}

const quoted = (value: unknown) => JSON.stringify(value);

const common = {
  name: z.string().trim().min(1, 'must not be empty').max(100).optional(),
  environments: z.array(z.string().trim().min(1, 'must not be empty')).min(1).optional(),
};

const weeklySchema = z
  .strictObject({
    ...common,
    days: z.array(z.enum(WEEKDAYS)).min(1, 'must list at least one day (mon..sun)'),
    from: z.string().regex(HH_MM, 'must be a time HH:MM (00:00..23:59)'),
    to: z.string().regex(/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/, 'must be a time HH:MM (00:00..24:00)'),
    timeZone: z
      .string()
      .default('UTC')
      .superRefine((zone, ctx) => {
        if (!isTimeZone(zone))
          ctx.addIssue({
            code: 'custom',
            message: `unknown time zone ${quoted(zone)} (an IANA name, e.g. Europe/Berlin)`,
          });
      }),
  })
  .superRefine((w, ctx) => {
    if (w.from === w.to)
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: `must differ from from (${w.from}); for whole days use from: "00:00", to: "24:00"`,
      });
  })
  .transform((w): WeeklyFreezeWindow => ({ kind: 'weekly', ...w, days: [...new Set(w.days)] }));

const instant = z.string().superRefine((value, ctx) => {
  if (parseRfc3339(value) === undefined)
    ctx.addIssue({
      code: 'custom',
      message: `must be an RFC 3339 time with an offset, e.g. 2026-12-24T18:00:00+01:00 (got ${quoted(value)})`,
    });
});

const oneOffSchema = z
  .strictObject({ ...common, start: instant, end: instant })
  .superRefine((w, ctx) => {
    const start = parseRfc3339(w.start);
    const end = parseRfc3339(w.end);
    if (start !== undefined && end !== undefined && end <= start)
      ctx.addIssue({
        code: 'custom',
        path: ['end'],
        message: `must be after start (${w.start}), got ${quoted(w.end)}`,
      });
  })
  .transform(
    (w): OneOffFreezeWindow => ({
      kind: 'once',
      ...w,
      startMs: parseRfc3339(w.start)!,
      endMs: parseRfc3339(w.end)!,
    }),
  );

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The `freeze:` list: each item is weekly (`days`, `from`, `to`, `timeZone`) or one-off (`start`,
 * `end`), told apart by its keys so that a mistake is reported against the kind meant.
 */
export const freezeListSchema = z.array(z.unknown()).transform((items, ctx) => {
  const windows: FreezeWindow[] = [];
  items.forEach((item, index) => {
    if (!isRecord(item)) {
      ctx.addIssue({
        code: 'custom',
        path: [index],
        message: 'expected a mapping: {days, from, to, timeZone} or {start, end}',
      });
      return;
    }
    const schema = 'start' in item || 'end' in item ? oneOffSchema : weeklySchema;
    const parsed = schema.safeParse(item, { reportInput: true });
    if (parsed.success) windows.push(parsed.data);
    else
      for (const issue of parsed.error.issues.flatMap(describeZodIssue))
        ctx.addIssue({ code: 'custom', path: [index, ...issue.path], message: issue.message });
  });
  return windows;
});

// ---------------------------------------------------------------------------------------------
// Settings file

/** What `MATERI_FREEZE_FILE` holds: windows, optionally only for some projects. */
export interface FreezeSettings {
  /** The file, for messages. */
  file: string;
  /** Projects the windows apply to; absent = every project. */
  projects?: string[];
  windows: FreezeWindow[];
}

const settingsSchema = z.strictObject({
  project: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
      error: 'must be a project name or a list of them',
    })
    .optional(),
  freeze: freezeListSchema.default([]),
});

/** Validates a parsed freeze settings file; throws {@link ConfigError} naming the file, the field and the value. */
export function parseFreezeSettings(input: unknown, file: string): FreezeSettings {
  const parsed = settingsSchema.safeParse(input ?? {}, { reportInput: true });
  if (!parsed.success) {
    const [first] = parsed.error.issues.flatMap(describeZodIssue);
    const at = first?.path.length ? `${formatPath(first.path)}: ` : '';
    throw new ConfigError(`MATERI_FREEZE_FILE ${file}: ${at}${first?.message ?? 'invalid'}`);
  }
  const { project, freeze } = parsed.data;
  const source = `MATERI_FREEZE_FILE ${file}`;
  return {
    file,
    projects: project === undefined ? undefined : typeof project === 'string' ? [project] : project,
    windows: freeze.map((w) => ({ ...w, source })),
  };
}

/** Reads and validates `MATERI_FREEZE_FILE` (YAML or JSON). */
export async function loadFreezeSettings(file: string): Promise<FreezeSettings> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`MATERI_FREEZE_FILE ${file}: cannot read it: ${describeCause(cause)}`, { cause });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ConfigError(
      `MATERI_FREEZE_FILE ${file}: not valid YAML: ${describeCause(cause).split('\n')[0]}`,
    );
  }
  return parseFreezeSettings(raw, file);
}

/** The windows of a settings file that apply to a project. */
export function settingsWindowsFor(settings: FreezeSettings | undefined, project: string): FreezeWindow[] {
  if (!settings) return [];
  if (settings.projects && !settings.projects.includes(project)) return [];
  return settings.windows;
}

// ---------------------------------------------------------------------------------------------
// Time

interface WallTime {
  year: number;
  month: number;
  day: number;
  /** 0 = Monday. */
  weekday: number;
  /** Minutes since local midnight. */
  minutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function fields(ms: number, timeZone: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms)))
    if (part.type !== 'literal') out[part.type] = Number(part.value);
  return out;
}

function wallTime(ms: number, timeZone: string): WallTime {
  const f = fields(ms, timeZone);
  const date = Date.UTC(f.year!, f.month! - 1, f.day!);
  return {
    year: f.year!,
    month: f.month!,
    day: f.day!,
    weekday: (new Date(date).getUTCDay() + 6) % 7,
    minutes: f.hour! * 60 + f.minute!,
  };
}

/** The zone's offset from UTC at an instant, in ms. */
function offsetAt(ms: number, timeZone: string): number {
  const f = fields(ms, timeZone);
  const asUtc = Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant of a wall-clock time in a zone. A time that occurs twice (autumn) is the earlier
 * (or, with `later`, the later); a time skipped by daylight saving (spring) is moved forward by the
 * gap, as Temporal's `compatible`.
 */
function zonedInstant(
  year: number,
  month: number,
  day: number,
  minutes: number,
  timeZone: string,
  later = false,
): number {
  const wall = Date.UTC(year, month - 1, day, 0, minutes);
  const before = offsetAt(wall - 86_400_000, timeZone);
  const after = offsetAt(wall + 86_400_000, timeZone);
  const fits = [before, after]
    .map((offset) => wall - offset)
    .filter((ms) => offsetAt(ms, timeZone) === wall - ms)
    .sort((a, b) => a - b);
  return (later ? fits.at(-1) : fits[0]) ?? wall - before;
}

function addDays(t: WallTime, days: number): { year: number; month: number; day: number } {
  const d = new Date(Date.UTC(t.year, t.month - 1, t.day + days));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

/** When the window covers `now`: the instant it ends; otherwise undefined. */
function windowEnd(window: FreezeWindow, now: number): number | undefined {
  if (window.kind === 'once') return window.startMs <= now && now < window.endMs ? window.endMs : undefined;
  const t = wallTime(now, window.timeZone);
  const from = minutesOf(window.from);
  const to = minutesOf(window.to);
  const on = (weekday: number) => window.days.includes(WEEKDAYS[(weekday + 7) % 7]!);
  // Compared as instants, so a repeated hour (autumn) is inside the window both times and a
  // skipped start time (spring) starts the window after the jump.
  for (const back of [0, 1]) {
    if (!on(t.weekday - back)) continue;
    const day = addDays(t, -back);
    const end = addDays(t, -back + (from < to ? 0 : 1));
    const startMs = zonedInstant(day.year, day.month, day.day, from, window.timeZone);
    const endMs = zonedInstant(end.year, end.month, end.day, to, window.timeZone, true);
    if (startMs <= now && now < endMs) return endMs;
  }
  return undefined;
}

function describeWindow(window: FreezeWindow): string {
  const times =
    window.kind === 'once'
      ? `${window.start} to ${window.end}`
      : `${window.days.join(',')} ${window.from}-${window.to} ${window.timeZone}`;
  return window.source ? `${times}, ${window.source}` : times;
}

/**
 * The freeze covering `environment` at `now`, if any: the first window (in the order given) that
 * covers it, and `until` = when no window covers the environment any more (adjacent and overlapping
 * windows, e.g. `fri 18:00-24:00` and `sat,sun 00:00-24:00`, join into one freeze).
 */
export function activeFreeze(
  windows: readonly FreezeWindow[],
  environment: string,
  now: Date | number = Date.now(),
): ActiveFreeze | undefined {
  const applicable = windows.filter((w) => !w.environments || w.environments.includes(environment));
  const start = typeof now === 'number' ? now : now.getTime();
  let first: FreezeWindow | undefined;
  let until = start;
  // Each step moves to the end of a window: 400 steps cover a year of daily windows.
  for (let step = 0; step < 400; step++) {
    const ends = applicable
      .map((w) => ({ w, end: windowEnd(w, until) }))
      .filter((e): e is { w: FreezeWindow; end: number } => e.end !== undefined && e.end > until);
    if (ends.length === 0) break;
    first ??= ends[0]!.w;
    until = Math.max(...ends.map((e) => e.end));
  }
  if (!first) return undefined;
  const times = describeWindow(first);
  return { name: first.name ?? times, until: new Date(until), reason: times };
}

// ---------------------------------------------------------------------------------------------
// The check at submit

/** What a deployment started inside a freeze records and shows. */
export interface FreezeOverride {
  /** The window(s) or incident it overrode. */
  window: string;
  reason: string;
  by: string;
}

/** An open incident that stops the line (see src/orchestrator/incidents.ts). */
export interface StopTheLineIncident {
  deploymentId: string;
  summary: string;
  openedAt: Date;
}

/** What {@link checkFreeze} looks at. */
export interface FreezeCheck {
  project: string;
  environment: string;
  /** The plan's windows and those of the settings file for the project. */
  windows: readonly FreezeWindow[];
  incident?: StopTheLineIncident;
  override?: boolean;
  overrideReason?: string;
  /** Who asks (recorded with an override). */
  by: string;
  now: number;
}

const HOW_TO_OVERRIDE =
  'to deploy anyway: --override-freeze --reason "<why>" (API: overrideFreeze, overrideReason)';

function isoSeconds(date: Date): string {
  return date.toISOString().replace('.000Z', 'Z');
}

/**
 * Refuses a deployment into a frozen environment with {@link EnvironmentFrozenError}, or an
 * override without a reason with {@link BadInputError}. Returns what to record when an override
 * let it through; undefined when nothing was frozen.
 */
export function checkFreeze(check: FreezeCheck): FreezeOverride | undefined {
  const reason = check.overrideReason?.trim() ?? '';
  if (check.override && reason === '')
    throw new BadInputError(
      '--override-freeze needs --reason "<why>" (recorded with the deployment and shown with it)',
    );
  if (!check.override && check.overrideReason !== undefined)
    throw new BadInputError('--reason is the reason of --override-freeze; give both or neither');
  const where = `environment ${check.environment} of ${check.project}`;
  const freeze = activeFreeze(check.windows, check.environment, check.now);
  const incident = check.incident;
  if (!freeze && !incident) return undefined;
  if (check.override) {
    const overridden = [
      ...(freeze ? [freeze.name === freeze.reason ? freeze.name : `${freeze.name} (${freeze.reason})`] : []),
      ...(incident ? [`incident: ${incident.summary} (deployment ${incident.deploymentId})`] : []),
    ];
    return { window: overridden.join('; '), reason, by: check.by };
  }
  if (freeze) {
    const what = freeze.name === freeze.reason ? freeze.name : `"${freeze.name}" (${freeze.reason})`;
    throw new EnvironmentFrozenError(
      `${where} is frozen by ${what} until ${isoSeconds(freeze.until)}; ${HOW_TO_OVERRIDE}`,
    );
  }
  throw new EnvironmentFrozenError(
    `${where} is frozen: open critical incident "${incident!.summary}" (deployment ${incident!.deploymentId}, since ${isoSeconds(incident!.openedAt)}) stops the line until a deployment to ${check.environment} succeeds; ${HOW_TO_OVERRIDE}`,
  );
}
