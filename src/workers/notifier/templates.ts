/**
 * `{{field}}` templates for titles, subjects and one-line status messages. Deliberately tiny: a
 * template is text with `{{name}}` placeholders (spaces inside the braces allowed) and nothing
 * else, so a settings file cannot run code or reach values that are not meant to be shown.
 *
 * @module
 */

/** The values a template may use. Every field is a string; a field the event lacks renders empty. */
export const TEMPLATE_FIELDS = [
  'eventType',
  'eventId',
  'deploymentId',
  'project',
  'environment',
  'version',
  'previousVersion',
  'status',
  'severity',
  'headline',
  'subject',
  'summary',
  'reason',
  'stage',
  'gate',
  'check',
  'details',
  'services',
  'link',
  'alert',
  'group',
  'value',
  'threshold',
  'emoji',
  'time',
] as const;

export type TemplateField = (typeof TEMPLATE_FIELDS)[number];
export type TemplateValues = Record<TemplateField, string>;

/** The templates a settings file may override. */
export interface Templates {
  /** Slack header block and notification text. @defaultValue `{{headline}}: {{subject}}` */
  slackTitle: string;
  /** E-mail subject. @defaultValue `[{{environment}}] {{project}} {{version}}: {{status}}` */
  emailSubject: string;
  /** The `status` channel's one line. @defaultValue `{{emoji}} {{subject}}: {{headline}}` */
  statusLine: string;
  /** PagerDuty `payload.summary` and Alertmanager `summary` annotation. @defaultValue `{{headline}}: {{subject}}` */
  incidentSummary: string;
}

export const DEFAULT_TEMPLATES: Templates = {
  slackTitle: '{{headline}}: {{subject}}',
  emailSubject: '[{{environment}}] {{project}} {{version}}: {{status}}',
  statusLine: '{{emoji}} {{subject}}: {{headline}}',
  incidentSummary: '{{headline}}: {{subject}}',
};

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_]*)\s*\}\}/g;
const KNOWN = new Set<string>(TEMPLATE_FIELDS);

/** The first placeholder that names no field, or undefined when the template is usable. */
export function unknownTemplateField(template: string): string | undefined {
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (!KNOWN.has(match[1]!)) return match[1]!;
  }
  return undefined;
}

/**
 * Fills a template. Empty fields leave no doubled spaces or empty brackets behind, so
 * `[{{environment}}] {{project}}` reads well for events that carry no environment.
 */
export function renderTemplate(template: string, values: Partial<TemplateValues>): string {
  return template
    .replace(PLACEHOLDER, (_, name: string) => values[name as TemplateField] ?? '')
    .replace(/\[\s*\]|\(\s*\)/g, '')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/\s+([:,.])/g, '$1')
    .trim();
}
