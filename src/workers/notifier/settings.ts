import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type ZodType, z } from 'zod';
import { ConfigError, describeCause } from '../../errors/index.js';
import { isKnownEventType } from '../../events/catalog.js';
import { durationMs } from '../../runtime/duration.js';
import { isHttpUrl } from '../../runtime/http-target.js';
import { DEFAULT_TEMPLATES, type Templates, unknownTemplateField } from './templates.js';

/**
 * The notifier's own settings file (YAML or JSON): where its channels are, which events go where,
 * the rate limit and the message templates. Secret values stay `${NAME}` references in the file
 * and are resolved from the worker's environment when a message is sent. See
 * docs/workers/notifier.md for every key.
 *
 * @module
 */

/** Severity of a notification, derived from the event. */
export type Severity = 'info' | 'warning' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/** The kinds of channel the notifier can send to. */
export const CHANNEL_TYPES = ['slack', 'email', 'pagerduty', 'alertmanager', 'webhook', 'status'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

/** Where a new notifier group starts reading: see `startFrom` in docs/workers/notifier.md. */
export const START_FROM = ['latest', 'beginning'] as const;

/** A channel name appears in Redis keys and in `target` of NotificationSent events. */
export const CHANNEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = durationMs(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be milliseconds or a duration like 500ms, 30s, 5m, 1h' });
    return z.NEVER;
  }
  return ms;
});

/**
 * A URL, which may be a secret (a Slack webhook URL is a credential). Either it holds `${NAME}`
 * references, checked once resolved at send time, or it is a literal http(s) URL. The message
 * never repeats the value.
 */
const urlSetting = z
  .string()
  .min(1, 'must not be empty')
  .refine((v) => v.includes('${') || isHttpUrl(v), 'must be an http(s) URL or a ${NAME} reference');

const rateLimit = z.strictObject({
  perChannel: z.number().int().positive().default(30),
  windowMs: duration.default(60_000),
});

/** Settings every channel kind accepts. */
const common = {
  /** How long one request may take. */
  timeoutMs: duration.optional(),
  /** Overrides the top-level rate limit for this channel. */
  rateLimit: rateLimit.optional(),
};

const headers = z.record(z.string().min(1), z.string());

const slackChannel = z.strictObject({ type: z.literal('slack'), webhookUrl: urlSetting, ...common });

const statusChannel = z.strictObject({ type: z.literal('status'), webhookUrl: urlSetting, ...common });

const emailChannel = z.strictObject({
  type: z.literal('email'),
  smtp: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    secure: z.boolean().default(false),
    requireTLS: z.boolean().default(false),
    ignoreTLS: z.boolean().default(false),
    rejectUnauthorized: z.boolean().default(true),
    auth: z.strictObject({ user: z.string().min(1), pass: z.string().min(1) }).optional(),
  }),
  from: z.string().min(1),
  to: z.array(z.string().min(3)).min(1),
  cc: z.array(z.string().min(3)).optional(),
  ...common,
});

const pagerdutyChannel = z.strictObject({
  type: z.literal('pagerduty'),
  routingKey: z.string().min(1),
  url: urlSetting.default('https://events.pagerduty.com/v2/enqueue'),
  /** `payload.source`; by default the incident's project and environment. */
  source: z.string().min(1).optional(),
  ...common,
});

const alertmanagerChannel = z.strictObject({
  type: z.literal('alertmanager'),
  url: urlSetting,
  alertname: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a Prometheus label value like MateriDeploymentFailed')
    .default('MateriDeploymentFailed'),
  endsAfter: duration.default(24 * 3_600_000),
  headers: headers.optional(),
  ...common,
});

const webhookChannel = z.strictObject({
  type: z.literal('webhook'),
  url: urlSetting,
  secret: z.string().min(1).optional(),
  headers: headers.optional(),
  ...common,
});

const channel = z.discriminatedUnion('type', [
  slackChannel,
  emailChannel,
  pagerdutyChannel,
  alertmanagerChannel,
  webhookChannel,
  statusChannel,
]);

const EVENT_PATTERN = /^(\*\*|(\*|[a-z0-9][a-z0-9_-]*)(:(\*|[a-z0-9][a-z0-9_-]*))*)$/;

const eventPattern = z
  .string()
  .min(1)
  .superRefine((pattern, ctx) => {
    if (!EVENT_PATTERN.test(pattern)) {
      ctx.addIssue({ code: 'custom', message: `"${pattern}" is not an event type or pattern` });
    } else if (!pattern.includes('*') && !isKnownEventType(pattern)) {
      ctx.addIssue({ code: 'custom', message: `unknown event type "${pattern}"` });
    }
  });

const route = z.strictObject({
  /** Shown in logs. */
  name: z.string().min(1).optional(),
  events: z.array(eventPattern).min(1),
  environments: z.array(z.string().min(1)).min(1).optional(),
  severities: z
    .array(z.enum(SEVERITIES as [Severity, ...Severity[]]))
    .min(1)
    .optional(),
  channels: z.array(z.string().min(1)).min(1),
});

const template = z.string().superRefine((text, ctx) => {
  const unknown = unknownTemplateField(text);
  if (unknown !== undefined) ctx.addIssue({ code: 'custom', message: `unknown field "{{${unknown}}}"` });
});

const templates = z.strictObject({
  slackTitle: template.optional(),
  emailSubject: template.optional(),
  statusLine: template.optional(),
  incidentSummary: template.optional(),
});

const settingsSchema = z
  .strictObject({
    dashboardUrl: urlSetting.default('http://127.0.0.1:4600'),
    channels: z.record(
      z.string().regex(CHANNEL_NAME_PATTERN, 'channel names use letters, digits, "_", "." and "-"'),
      channel,
    ),
    routes: z.array(route).min(1, 'at least one route is needed'),
    rateLimit: rateLimit.default({ perChannel: 30, windowMs: 60_000 }),
    templates: templates.default({}),
    /**
     * Where the `printery-notifier` group starts reading when it is created (first start): at
     * the end of the streams (`latest`, so history is not announced again), or at their start.
     */
    startFrom: z.enum(START_FROM).default('latest'),
  })
  .superRefine((settings, ctx) => {
    for (const [i, r] of settings.routes.entries()) {
      for (const [j, name] of r.channels.entries()) {
        if (!Object.hasOwn(settings.channels, name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', i, 'channels', j],
            message: `no channel named "${name}" in channels`,
          });
        }
      }
    }
  });

type ParsedSettings = z.output<typeof settingsSchema>;

export type ChannelSettings = z.output<typeof channel>;
export type SlackChannelSettings = z.output<typeof slackChannel>;
export type StatusChannelSettings = z.output<typeof statusChannel>;
export type EmailChannelSettings = z.output<typeof emailChannel>;
export type PagerDutyChannelSettings = z.output<typeof pagerdutyChannel>;
export type AlertmanagerChannelSettings = z.output<typeof alertmanagerChannel>;
export type WebhookChannelSettings = z.output<typeof webhookChannel>;
export type RouteSettings = z.output<typeof route>;
export type RateLimitSettings = z.output<typeof rateLimit>;

/** Validated notifier settings with every default filled in. */
export interface NotifierSettings extends Omit<ParsedSettings, 'templates'> {
  templates: Templates;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join('');
}

/** The first problem of a failed parse as one line: `channels.deploys.webhookUrl: is required`. */
function describeIssue(issue: z.core.$ZodIssue): string {
  const at = formatPath(issue.path);
  let message = issue.message;
  if (issue.code === 'invalid_type' && /received undefined$/.test(message)) message = 'is required';
  else if (issue.code === 'invalid_union' && issue.path.at(-1) === 'type') {
    message = `must be one of ${CHANNEL_TYPES.join(', ')}`;
  } else if (issue.code === 'invalid_key') message = 'channel names use letters, digits, "_", "." and "-"';
  return at ? `${at}: ${message}` : message;
}

/**
 * Validates settings given as a plain object (parsed YAML/JSON). Throws {@link ConfigError}
 * naming the file (`where`) and the path of the first bad key; values are never repeated, as
 * they may be secrets.
 */
export function parseNotifierSettings(input: unknown, where = 'notifier settings'): NotifierSettings {
  const parsed = (settingsSchema as ZodType<ParsedSettings>).safeParse(input ?? {});
  if (!parsed.success) {
    throw new ConfigError(`${where}: ${describeIssue(parsed.error.issues[0]!)}`);
  }
  const settings = parsed.data;
  const overrides = Object.fromEntries(Object.entries(settings.templates).filter(([, v]) => v !== undefined));
  return {
    ...settings,
    dashboardUrl: settings.dashboardUrl.replace(/\/+$/, ''),
    templates: { ...DEFAULT_TEMPLATES, ...overrides },
  };
}

/**
 * Reads and validates a settings file: JSON when the name ends in `.json`, YAML otherwise.
 * Throws {@link ConfigError} naming the file and the problem.
 */
export async function loadNotifierSettings(file: string): Promise<NotifierSettings> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`${file}: cannot read notifier settings: ${describeCause(cause)}`, { cause });
  }
  let raw: unknown;
  try {
    raw = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    // Parser messages may quote the offending line, which could hold a literal secret: keep the position only.
    const first = describeCause(cause).split('\n')[0]!;
    const position = /line \d+(, column \d+)?|position \d+/.exec(first)?.[0];
    const kind = extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML';
    throw new ConfigError(`${file}: not valid ${kind}${position ? ` (${position})` : ''}`);
  }
  return parseNotifierSettings(raw, file);
}
