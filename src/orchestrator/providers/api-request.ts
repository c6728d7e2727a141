import { sleep } from '../../bus/backoff.js';
import { describeCause } from '../../errors/index.js';
import { redactUrl } from '../../runtime/logging.js';
import { ProviderFailure } from './errors.js';
import { maskSecrets } from './resolve-settings.js';

/** One HTTP request of a provider. */
export interface ApiRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  timeoutMs: number;
  signal: AbortSignal;
  /** Values that must not appear in messages (resolved secrets). */
  secrets: readonly string[];
  /** Who is asking, for messages, e.g. `vercel` or `deploy hook`. */
  label: string;
}

/** An answer: the status, the text, and the JSON when the text is JSON. */
export interface ApiResponse {
  status: number;
  text: string;
  json: unknown;
}

/**
 * Sends a request and reads the answer. Rejects with the signal's reason when it aborts, and with
 * a {@link ProviderFailure} marked `transient` when the server cannot be reached or times out.
 * The URL in messages is redacted (no query, no user info) and secrets are masked.
 */
export async function sendRequest(request: ApiRequest): Promise<ApiResponse> {
  const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
  let body: string | undefined;
  if (request.body !== undefined) {
    if (typeof request.body === 'string') body = request.body;
    else {
      body = JSON.stringify(request.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
        headers['content-type'] = 'application/json';
    }
  }
  const timeout = AbortSignal.timeout(request.timeoutMs);
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      body,
      signal: AbortSignal.any([request.signal, timeout]),
      redirect: 'follow',
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, text, json };
  } catch (error) {
    if (request.signal.aborted) throw request.signal.reason;
    // fetch reports network errors as "fetch failed" with the real reason as its cause.
    const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
    const why = timeout.aborted ? `no answer within ${request.timeoutMs} ms` : describeCause(cause);
    throw new TransientFailure(
      `${request.label} ${request.method} ${describeUrl(request.url, request.secrets)} failed: ${maskSecrets(why, request.secrets)}`,
    );
  }
}

/** A failure that may pass by itself (network, 5xx, 429): pollers retry a few before giving up. */
export class TransientFailure extends ProviderFailure {}

/** Whether an HTTP status is worth retrying. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** A URL as shown in messages: no credentials, no query, secrets masked. */
export function describeUrl(url: string, secrets: readonly string[]): string {
  return maskSecrets(redactUrl(url), secrets);
}

/** A short, single-line excerpt of a response body for an error message. */
export function excerpt(text: string, secrets: readonly string[], max = 200): string {
  const line = maskSecrets(text, secrets).replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

/** The value at a dot path (`a.b.0.c`) of a JSON value. */
export function valueAt(json: unknown, path: string): unknown {
  let value = json;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/**
 * Calls `attempt` until it returns a value other than undefined, waiting `intervalMs` between
 * calls. Transient failures are tolerated up to `maxTransient` in a row.
 */
export async function poll<T>(
  attempt: () => Promise<T | undefined>,
  options: { intervalMs: number; signal: AbortSignal; maxTransient?: number },
): Promise<T> {
  let transient = 0;
  for (;;) {
    try {
      const result = await attempt();
      transient = 0;
      if (result !== undefined) return result;
    } catch (error) {
      if (!(error instanceof TransientFailure) || ++transient > (options.maxTransient ?? 3)) throw error;
    }
    options.signal.throwIfAborted();
    await sleep(options.intervalMs, options.signal);
    options.signal.throwIfAborted();
  }
}
