import { describeCause } from '../../../errors/index.js';
import { type ImageReference, isLoopbackRegistry } from './reference.js';

/**
 * Manifest media types a client must accept. Registries answer 404 to a manifest HEAD whose
 * Accept header does not list the type the manifest was pushed with (distribution 2.8 does this
 * for OCI manifests), so every current type is listed.
 */
export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface ManifestLookupOptions {
  /** Sent to the token server (Bearer challenge) or the registry (Basic challenge). */
  credentials?: RegistryCredentials;
  /** Use plain HTTP. Loopback registries always use it. @defaultValue false */
  insecure?: boolean;
  signal?: AbortSignal;
}

/** What a registry said about a manifest. */
export type ManifestLookup =
  | { found: true; digest?: string; mediaType?: string }
  | { found: false; reason: 'not-found' | 'unauthorized' | 'forbidden' | 'unexpected'; detail: string };

/** The registry could not be asked (network error, broken challenge, token server refusal). */
export class RegistryRequestError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryRequestError';
  }
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Asks a registry whether a manifest exists, the way `docker pull` does (OCI distribution API):
 * `HEAD /v2/<name>/manifests/<reference>` anonymously; on 401, follows the `WWW-Authenticate`
 * challenge — `Bearer` gets a token from the realm (with basic credentials when given), `Basic`
 * sends the credentials — and asks again. Throws {@link RegistryRequestError} when the registry
 * or token server cannot be reached or answers in a way the protocol does not allow.
 */
export async function lookupManifest(
  ref: ImageReference,
  options: ManifestLookupOptions = {},
): Promise<ManifestLookup> {
  const scheme = options.insecure || isLoopbackRegistry(ref.registry) ? 'http' : 'https';
  const url = `${scheme}://${ref.registry}/v2/${ref.repository}/manifests/${ref.reference}`;
  let response = await requestManifest(url, undefined, options.signal, ref.registry);
  let authenticated = false;
  if (response.status === 401) {
    const challenge = parseChallenges(response.headers.get('www-authenticate') ?? '');
    const authorization = await answerChallenge(challenge, ref, options);
    if (authorization === undefined) {
      return {
        found: false,
        reason: 'unauthorized',
        detail: `registry ${ref.registry} requires credentials (HTTP 401)`,
      };
    }
    response = await requestManifest(url, authorization, options.signal, ref.registry);
    authenticated = true;
  }
  const status = response.status;
  if (status >= 200 && status < 300) {
    return {
      found: true,
      digest: response.headers.get('docker-content-digest') ?? undefined,
      mediaType: response.headers.get('content-type') ?? undefined,
    };
  }
  if (status === 404) return { found: false, reason: 'not-found', detail: `HTTP 404` };
  if (status === 401) {
    const detail = options.credentials
      ? `registry ${ref.registry} rejected the credentials (HTTP 401${authenticated ? ' after authenticating' : ''})`
      : `registry ${ref.registry} requires credentials (HTTP 401)`;
    return { found: false, reason: 'unauthorized', detail };
  }
  if (status === 403) {
    return { found: false, reason: 'forbidden', detail: `registry ${ref.registry} denied access (HTTP 403)` };
  }
  return { found: false, reason: 'unexpected', detail: `registry ${ref.registry} answered HTTP ${status}` };
}

async function requestManifest(
  url: string,
  authorization: string | undefined,
  signal: AbortSignal | undefined,
  registry: string,
): Promise<Response> {
  const headers: Record<string, string> = { accept: MANIFEST_MEDIA_TYPES.join(', ') };
  if (authorization) headers.authorization = authorization;
  const send = (method: 'HEAD' | 'GET') =>
    fetch(url, { method, headers, signal }).catch((cause: unknown) => {
      throw new RegistryRequestError(`cannot reach registry ${registry}: ${describeFetchError(cause)}`, {
        cause,
      });
    });
  const response = await send('HEAD');
  // A few registries and proxies do not implement HEAD on manifests.
  if (response.status !== 405) return response;
  const fallback = await send('GET');
  await fallback.body?.cancel();
  return fallback;
}

async function answerChallenge(
  challenges: Challenge[],
  ref: ImageReference,
  options: ManifestLookupOptions,
): Promise<string | undefined> {
  const bearer = challenges.find((c) => c.scheme === 'bearer');
  if (bearer) return `Bearer ${await fetchBearerToken(bearer, ref, options)}`;
  const basic = challenges.find((c) => c.scheme === 'basic');
  if (basic) {
    if (!options.credentials) return undefined;
    const { username, password } = options.credentials;
    return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  throw new RegistryRequestError(
    `registry ${ref.registry} answered 401 without a Bearer or Basic WWW-Authenticate challenge`,
  );
}

/** Token flow of the distribution spec: GET <realm>?service=…&scope=… → `{ token }`. */
async function fetchBearerToken(
  challenge: Challenge,
  ref: ImageReference,
  options: ManifestLookupOptions,
): Promise<string> {
  const realm = challenge.params.realm;
  let url: URL;
  try {
    url = new URL(realm ?? '');
  } catch {
    throw new RegistryRequestError(`registry ${ref.registry} sent a Bearer challenge without a valid realm`);
  }
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  url.searchParams.set('scope', challenge.params.scope ?? `repository:${ref.repository}:pull`);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.credentials) {
    const { username, password } = options.credentials;
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  const tokenServer = url.host;
  const response = await fetch(url, { headers, signal: options.signal }).catch((cause: unknown) => {
    throw new RegistryRequestError(`cannot reach token server ${tokenServer}: ${describeFetchError(cause)}`, {
      cause,
    });
  });
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    throw new RegistryRequestError(
      options.credentials
        ? `token server ${tokenServer} rejected the credentials (HTTP ${response.status})`
        : `token server ${tokenServer} requires credentials (HTTP ${response.status})`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new RegistryRequestError(`token server ${tokenServer} answered HTTP ${response.status}`);
  }
  const body = (await response.json().catch(() => undefined)) as
    | { token?: unknown; access_token?: unknown }
    | undefined;
  const token = body?.token ?? body?.access_token;
  if (typeof token !== 'string' || token === '') {
    throw new RegistryRequestError(`token server ${tokenServer} answered without a token`);
  }
  return token;
}

/**
 * Parses a `WWW-Authenticate` value (RFC 7235), which may hold several challenges:
 * `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="…"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  // Each match is a bare word (a scheme) or a `name=value` parameter of the latest scheme.
  const item = /([A-Za-z][\w.-]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?/g;
  for (const [, name, value] of header.matchAll(item)) {
    if (value === undefined) {
      challenges.push({ scheme: name!.toLowerCase(), params: {} });
    } else {
      const current = challenges.at(-1);
      if (current) current.params[name!.toLowerCase()] = unquote(value);
    }
  }
  return challenges;
}

function unquote(value: string): string {
  return value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}

/** fetch rejects with "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND) is the cause. */
export function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'AbortError') return 'aborted';
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  return describeCause(cause);
}
