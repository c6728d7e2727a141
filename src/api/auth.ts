import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MateriError } from '../errors/index.js';
import { SessionSigner, sessionCookieOf, setSessionCookie } from './session.js';
import { type Identity, identityOf, type Role, TokenRegistry, type TokenSources } from './tokens.js';

/**
 * Who may call a route: anyone (`public`), any token (`read`), a deployer or admin token
 * (`write`), or an admin token (`admin`). Without any token configured, reads are open and writes
 * (`write` and `admin`) are accepted from loopback only.
 */
export type Access = 'public' | 'read' | 'write' | 'admin';

/** Where the server's tokens come from (see docs/configuration.md, "Tokens and roles"). */
export type AuthSettings = TokenSources;

/** How the server is protected, for `GET /api/info` and the dashboard's notice. */
export interface AuthMode {
  /** `token`: writes need a deployer or admin token; `loopback`: no token set, writes only from this machine. */
  writes: 'token' | 'loopback';
  /** `token`: reads need a token; `open`: anyone who reaches the server. */
  reads: 'token' | 'open';
}

/** A route as the server registered it, with its access (for tests that go through every route). */
export interface RouteAccess {
  method: string;
  url: string;
  access: Access;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (default `read`). */
    access?: Access;
  }
  interface FastifyRequest {
    /** The token (or session) the request authenticated with; `null` when it did not. */
    identity: Identity | null;
    /** The name of that token: the actor a write records. `undefined` without a token. */
    readonly actor: string | undefined;
  }
  interface FastifyInstance {
    /** Every route with its access, in registration order. */
    routeAccess: RouteAccess[];
  }
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

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** `Authorization: Bearer …`: the only place a token is read from (never the URL: it ends up in logs). */
function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

/** `token "ci" (deployer for staging)`. */
export function describeIdentity(identity: Identity): string {
  const scope = identity.environments ? ` for ${identity.environments.join(', ')}` : '';
  return `token "${identity.name}" (${identity.role}${scope})`;
}

const ROLE_RANK: Record<Role, number> = { viewer: 0, deployer: 1, admin: 2 };

/**
 * Authenticates requests (a bearer token, or the dashboard's session cookie) and checks routes'
 * access. The tokens file is read again when it changed, before each authentication, and a
 * session's token is looked up on every request: removing a token ends its sessions too.
 */
export class Authenticator {
  readonly tokens: TokenRegistry;
  readonly sessions = new SessionSigner();

  constructor(settings: AuthSettings, onReloadError?: (message: string) => void) {
    this.tokens = new TokenRegistry(settings, onReloadError);
  }

  mode(): AuthMode {
    return {
      writes: this.tokens.writesNeedToken ? 'token' : 'loopback',
      reads: this.tokens.readsNeedToken ? 'token' : 'open',
    };
  }

  /** The request's identity; `presented` says whether it carried a bearer token at all. */
  authenticate(request: FastifyRequest): { identity: Identity | null; presented: boolean } {
    this.tokens.refresh();
    const bearer = bearerOf(request);
    if (bearer !== undefined) return { identity: this.tokens.identify(bearer) ?? null, presented: true };
    const cookie = sessionCookieOf(request);
    if (cookie) {
      const name = this.sessions.verify(cookie, (n) => this.tokens.byName(n)?.sha256);
      const entry = name === undefined ? undefined : this.tokens.byName(name);
      if (entry) return { identity: identityOf(entry), presented: true };
    }
    return { identity: null, presented: false };
  }

  /**
   * Throws unless the request may use a route with this access: 401 when a token is needed and the
   * request has none the server knows, 403 when it authenticates but its role is not enough (or,
   * without tokens, a write comes from another machine). Sets `request.identity`.
   */
  authorize(request: FastifyRequest, access: Access): void {
    const { identity, presented } = this.authenticate(request);
    request.identity = identity;
    if (access === 'public') return;
    const mode = this.mode();
    if (access === 'read') {
      if (mode.reads === 'open' || identity) return;
      throw new UnauthorizedError(
        presented
          ? 'the token is not known to this server'
          : 'reading needs a token (Authorization: Bearer …, or a dashboard session)',
      );
    }
    if (mode.writes === 'loopback') {
      // No token can write here: a write from this machine is anonymous (its actor is what it says).
      request.identity = null;
      if (LOOPBACK.has(request.ip)) return;
      throw new ForbiddenError(
        'no token is configured on the server (MATERI_TOKENS_FILE, MATERI_API_TOKEN), so writes are only accepted from the machine itself',
      );
    }
    if (!identity) {
      throw new UnauthorizedError(
        presented
          ? 'the token is not known to this server'
          : 'this action needs a deployer or admin token (Authorization: Bearer …, or a dashboard session)',
      );
    }
    const needed: Role = access === 'admin' ? 'admin' : 'deployer';
    if (ROLE_RANK[identity.role] < ROLE_RANK[needed]) {
      throw new ForbiddenError(
        `${describeIdentity(identity)} may not ${request.method} ${request.routeOptions.url ?? request.url}: that needs ${needed === 'admin' ? 'an admin token' : 'a deployer or admin token'}`,
      );
    }
  }

  /** Whether this request may use `write` routes (for `GET /api/info`: the dashboard shows its actions only then). */
  mayWrite(request: FastifyRequest): boolean {
    try {
      this.authorize(request, 'write');
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Installs authentication on a server: every route's access is checked before anything else runs,
 * `request.identity` / `request.actor` are set, `app.routeAccess` lists the routes, and
 * `POST /api/session` / `DELETE /api/session` open and close dashboard sessions.
 */
export function installAuth(
  app: FastifyInstance,
  settings: AuthSettings,
  onReloadError?: (message: string) => void,
): Authenticator {
  const auth = new Authenticator(settings, onReloadError);
  const routes: RouteAccess[] = [];
  app.decorate('routeAccess', routes);
  app.decorateRequest('identity', null);
  app.decorateRequest('actor', {
    getter(this: FastifyRequest) {
      return this.identity?.name;
    },
  });
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, access: route.config?.access ?? 'read' });
    }
  });
  app.addHook('onRequest', async (request) => {
    auth.authorize(request, request.routeOptions.config?.access ?? 'read');
  });

  app.post(
    '/api/session',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Open a dashboard session with a token: sets an HttpOnly cookie (not the token itself)',
        body: {
          type: 'object',
          required: ['token'],
          additionalProperties: false,
          properties: { token: { type: 'string', minLength: 1, maxLength: 500 } },
        },
      },
    },
    async (request, reply) => {
      auth.tokens.refresh();
      const identity = auth.tokens.identify((request.body as { token: string }).token);
      if (!identity) throw new UnauthorizedError('the token is not known to this server');
      const session = auth.sessions.sign(identity.name, auth.tokens.byName(identity.name)!.sha256);
      setSessionCookie(request, reply, session);
      return { ...identity, expiresAt: new Date(session.expiresAt).toISOString() };
    },
  );
  app.delete(
    '/api/session',
    { config: { access: 'public' }, schema: { summary: 'Close the dashboard session (clears the cookie)' } },
    async (request, reply) => {
      const cookie = sessionCookieOf(request);
      if (cookie) auth.sessions.revoke(cookie);
      setSessionCookie(request, reply, undefined);
      return reply.status(204).send();
    },
  );
  return auth;
}

/**
 * The actor a write records: the authenticated token's name; without tokens (loopback mode), what
 * the client says (`triggeredBy`, `by`), else `local`. A client-sent value is ignored when a token
 * authenticated the request.
 */
export function actorOf(request: FastifyRequest, claimed?: string): string {
  return request.actor ?? (claimed?.trim() || 'local');
}

/** Refuses (403) a deployer token limited to other environments. */
export function assertEnvironment(request: FastifyRequest, environment: string): void {
  const identity = request.identity;
  if (
    identity?.role === 'deployer' &&
    identity.environments &&
    !identity.environments.includes(environment)
  ) {
    throw new ForbiddenError(
      `${describeIdentity(identity)} may not act on environment ${environment}: it is limited to ${identity.environments.join(', ')}`,
    );
  }
}

/** Refuses (403) what only an admin token may do (`what`: "override a freeze"). */
export function assertAdmin(request: FastifyRequest, what: string): void {
  const identity = request.identity;
  if (identity && identity.role !== 'admin') {
    throw new ForbiddenError(`${describeIdentity(identity)} may not ${what}: that needs an admin token`);
  }
}
