import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { MateriError } from '../errors/index.js';

/** Who may call a route: anyone, readers (viewer or operator), or operators only. */
export type Access = 'public' | 'read' | 'write';

export interface AuthSettings {
  /** Operator token (`MATERI_API_TOKEN`): writes, and reads. */
  apiToken?: string;
  /** Viewer token (`MATERI_VIEWER_TOKEN`): when set, reads need it or the operator token. */
  viewerToken?: string;
}

/** How the server is protected, for `GET /api/info` and the dashboard's notice. */
export interface AuthMode {
  /** `token`: writes need the operator token; `loopback`: no token set, writes only from this machine. */
  writes: 'token' | 'loopback';
  /** `token`: reads need the viewer (or operator) token; `open`: anyone who reaches the server. */
  reads: 'token' | 'open';
}

export function authMode(settings: AuthSettings): AuthMode {
  return { writes: settings.apiToken ? 'token' : 'loopback', reads: settings.viewerToken ? 'token' : 'open' };
}

export class UnauthorizedError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_UNAUTHORIZED', message);
  }
}

export class ForbiddenError extends MateriError {
  constructor(message: string) {
    super('MATERI_ERR_FORBIDDEN', message);
  }
}

/** Compares in constant time (over digests, so the lengths do not leak either). */
function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Whether this request may use `write` routes (for `GET /api/info`: the dashboard shows its actions only then). */
export function mayWrite(request: FastifyRequest, settings: AuthSettings): boolean {
  try {
    authorize(request, 'write', settings);
    return true;
  } catch {
    return false;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** The bearer token of a request: `Authorization: Bearer …`, or `?access_token=` (EventSource cannot set headers). */
function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.access_token === 'string' ? query.access_token : undefined;
}

/**
 * Throws unless the request may use a route with this access: 401 when the request does not
 * authenticate (no token, or one the server does not know), 403 when it does but its role does not
 * allow the route (a viewer token on a write, a write from another machine without operator token).
 */
export function authorize(request: FastifyRequest, access: Access, settings: AuthSettings): void {
  if (access === 'public') return;
  const token = tokenOf(request);
  const operator =
    settings.apiToken !== undefined && token !== undefined && sameToken(token, settings.apiToken);
  if (access === 'read') {
    if (!settings.viewerToken || operator) return;
    if (token !== undefined && sameToken(token, settings.viewerToken)) return;
    throw new UnauthorizedError(
      token ? 'the token is not valid for reading' : 'reading needs a bearer token (MATERI_VIEWER_TOKEN)',
    );
  }
  if (settings.apiToken) {
    if (operator) return;
    // A valid viewer token identifies the caller, who is simply not allowed to write: 403, not 401.
    if (token !== undefined && settings.viewerToken !== undefined && sameToken(token, settings.viewerToken))
      throw new ForbiddenError('the viewer token can only read; this action needs the operator token');
    throw new UnauthorizedError(
      token
        ? 'the token is not an operator token'
        : 'this action needs the operator token (MATERI_API_TOKEN)',
    );
  }
  if (!LOOPBACK.has(request.ip)) {
    throw new ForbiddenError(
      'no MATERI_API_TOKEN is set on the server, so writes are only accepted from the machine itself',
    );
  }
}
