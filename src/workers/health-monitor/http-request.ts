import { performance } from 'node:perf_hooks';
import { redactUrl } from '../../runtime/logging.js';

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

/** The answer to one request, or why there was none. Never holds a URL or a header value. */
export type HttpOutcome =
  | { kind: 'response'; status: number; body: string; latencyMs: number }
  | { kind: 'failure'; failure: string; latencyMs: number };

/**
 * Sends one GET with a time limit. Resolves with the response (any status) or a short failure
 * (`timeout after 2000 ms`, `ECONNREFUSED`, …); rejects only when `signal` aborts, with its reason.
 * Redirects are not followed: a health endpoint that redirects is answering something else.
 */
export async function httpGet(
  target: HttpTarget,
  timeoutMs: number,
  signal: AbortSignal,
  accept?: string,
): Promise<HttpOutcome> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = AbortSignal.any([signal, timeout]);
  const headers = accept ? { accept, ...target.headers } : target.headers;
  const started = performance.now();
  try {
    const response = await fetch(target.url, { headers, redirect: 'manual', signal: combined });
    const body = await response.text();
    return { kind: 'response', status: response.status, body, latencyMs: performance.now() - started };
  } catch (error) {
    const latencyMs = performance.now() - started;
    if (signal.aborted) throw signal.reason;
    if (timeout.aborted) return { kind: 'failure', failure: `timeout after ${timeoutMs} ms`, latencyMs };
    return { kind: 'failure', failure: failureCode(error), latencyMs };
  }
}

/**
 * A short, secret-free name for a network failure: the system error code when there is one
 * (`ECONNREFUSED`, `ENOTFOUND`, `ECONNRESET`), else the error's class name. Messages from the
 * network stack are not used as they may quote a host with credentials.
 */
function failureCode(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0];
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.name : 'request failed';
}
