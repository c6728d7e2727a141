import { redactUrl } from './logging.js';

/**
 * An HTTP endpoint ready to call: `${NAME}` references already resolved, credentials moved from
 * the URL into an Authorization header (fetch refuses URLs with user info), and a redacted form
 * for messages.
 */
export interface HttpTarget {
  url: string;
  headers: Record<string, string>;
  /** The URL with credentials and query string masked; the only form that may reach a message. */
  display: string;
}

/**
 * Builds a target from a resolved URL. Returns undefined when the URL is not http(s); callers
 * report the field, never the value.
 */
export function httpTarget(resolvedUrl: string, headers: Record<string, string>): HttpTarget | undefined {
  let parsed: URL;
  try {
    parsed = new URL(resolvedUrl);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  const display = redactUrl(resolvedUrl);
  const allHeaders = { ...headers };
  if (parsed.username || parsed.password) {
    const user = decodeURIComponent(parsed.username);
    const password = decodeURIComponent(parsed.password);
    allHeaders.authorization ??= `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    parsed.username = '';
    parsed.password = '';
  }
  return { url: parsed.toString(), headers: allHeaders, display };
}

/** Whether `text` is an absolute http:// or https:// URL. */
export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
