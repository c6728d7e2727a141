import { BackendUnavailableError, ERROR_CODES, type ErrorCode, MateriError } from '../errors/index.js';
import type { Settings } from '../runtime/config.js';

/** Calls the Materi HTTP API at `MATERI_API_URL` with the operator token; errors keep the server's code. */
export async function apiRequest<T>(
  settings: Settings,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<T> {
  const url = new URL(path, settings.apiUrl);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(settings.apiToken ? { authorization: `Bearer ${settings.apiToken}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (cause) {
    throw new BackendUnavailableError(
      `no Materi server answers at ${settings.apiUrl}: start one with \`npx materi up\`, or run this in-process with --standalone`,
      { cause },
    );
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    const code = (
      error?.code && error.code in ERROR_CODES ? error.code : 'MATERI_ERR_BACKEND_UNAVAILABLE'
    ) as ErrorCode;
    throw new MateriError(code, error?.message ?? `${method} ${url.pathname} answered ${response.status}`);
  }
  return parsed as T;
}
