import { performance } from 'node:perf_hooks';
import type { HttpTarget } from '../../runtime/http-target.js';

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
