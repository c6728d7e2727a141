import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths whose values are replaced by "[redacted]" in every log line. Secrets never reach logs:
 * tokens, passwords, webhook URLs (a Slack or PagerDuty webhook URL is itself a credential) and
 * connection strings that may carry a password.
 */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'routingKey',
  '*.routingKey',
  'webhookUrl',
  '*.webhookUrl',
  'url',
  'headers.authorization',
  '*.headers.authorization',
  'env',
  '*.env',
];

export interface LoggerSettings {
  /** Component name, e.g. `orchestrator`. */
  name: string;
  /** @defaultValue `MATERI_LOG_LEVEL` or `info` */
  level?: string;
  /** Where lines go. @defaultValue standard error, so that command output on stdout stays clean */
  destination?: NodeJS.WritableStream;
}

/** A JSON logger (pino) that writes to standard error and redacts secrets. */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level ?? process.env.MATERI_LOG_LEVEL ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(options, (settings.destination as never) ?? pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything (for tests and library use without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Removes credentials from a URL before it is shown or logged: user info and query strings
 * (which often carry tokens) are replaced.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username) parsed.username = '***';
    if (parsed.password) parsed.password = '***';
    if (parsed.search) parsed.search = '?***';
    return parsed.toString();
  } catch {
    return '[unparseable url]';
  }
}
