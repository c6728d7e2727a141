import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The dashboard's session cookie. */
export const SESSION_COOKIE = 'materi_session';

/** How long a session lasts. @defaultValue 12 hours */
export const SESSION_TTL_MS = 12 * 3_600_000;

/**
 * Signs and checks session cookies: `<name in base64url>.<expiry ms>.<HMAC-SHA256>`, the HMAC
 * keyed with a random secret of this process (so sessions end when the server restarts, and are
 * not shared between server processes) over the name, the expiry and the token's current hash (so a
 * token given a new secret ends the sessions opened with the old one). The cookie holds no secret.
 */
export class SessionSigner {
  private readonly key = randomBytes(32);
  /** Signed-out cookie values, until they would have expired anyway. */
  private readonly revoked = new Map<string, number>();

  constructor(private readonly ttlMs = SESSION_TTL_MS) {}

  /** A cookie value for the token of that name and hash, and when it expires. */
  sign(name: string, tokenHash: string, now = Date.now()): { value: string; expiresAt: number } {
    const expiresAt = now + this.ttlMs;
    const encoded = Buffer.from(name).toString('base64url');
    return { value: `${encoded}.${expiresAt}.${this.mac(name, expiresAt, tokenHash)}`, expiresAt };
  }

  /** The token name a cookie value was signed for, when it is unexpired; `hashOf` gives the token's current hash. */
  verify(value: string, hashOf: (name: string) => string | undefined, now = Date.now()): string | undefined {
    const [encoded, expiry, mac, ...rest] = value.split('.');
    if (!encoded || !expiry || !mac || rest.length > 0 || !/^\d{1,16}$/.test(expiry)) return undefined;
    const expiresAt = Number(expiry);
    if (expiresAt <= now || this.revoked.has(value)) return undefined;
    const name = Buffer.from(encoded, 'base64url').toString();
    const hash = hashOf(name);
    if (hash === undefined) return undefined;
    const expected = Buffer.from(this.mac(name, expiresAt, hash), 'base64url');
    const given = Buffer.from(mac, 'base64url');
    return given.length === expected.length && timingSafeEqual(given, expected) ? name : undefined;
  }

  /** Ends a session before its expiry (sign-out): its cookie is refused from now on, even if copied. */
  revoke(value: string, now = Date.now()): void {
    for (const [old, expiresAt] of this.revoked) if (expiresAt <= now) this.revoked.delete(old);
    const expiry = Number(value.split('.')[1]);
    if (Number.isFinite(expiry) && expiry > now) this.revoked.set(value, expiry);
  }

  private mac(name: string, expiresAt: number, tokenHash: string): string {
    return createHmac('sha256', this.key).update(`${name}\n${expiresAt}\n${tokenHash}`).digest('base64url');
  }
}

/** The session cookie's value in a request, if any. */
export function sessionCookieOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === SESSION_COOKIE) return value.join('=');
  }
  return undefined;
}

/** Sets (or, with `undefined`, clears) the session cookie: HttpOnly, SameSite=Strict, Secure over https (or behind a proxy that says `X-Forwarded-Proto: https`). */
export function setSessionCookie(
  request: FastifyRequest,
  reply: FastifyReply,
  session: { value: string; expiresAt: number } | undefined,
): void {
  const attributes = [
    `${SESSION_COOKIE}=${session?.value ?? ''}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${session ? Math.floor((session.expiresAt - Date.now()) / 1000) : 0}`,
    // Behind a TLS proxy the proxy says so; trusting the header only ever makes the cookie stricter.
    ...(request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https' ? ['Secure'] : []),
  ];
  reply.header('set-cookie', attributes.join('; '));
}
