import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, randomUUID, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) serving from a
 * temporary directory on a free loopback port, optionally with token authentication backed by
 * {@link TokenIssuer}.
 */
export interface TestRegistry {
  /** `127.0.0.1:<port>`, as it appears in image references. */
  host: string;
  stop(): Promise<void>;
}

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export async function startRegistry(options: { tokenAuth?: TokenIssuer } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'materi-registry-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const auth = options.tokenAuth
      ? [
          'auth:',
          '  token:',
          `    realm: ${options.tokenAuth.realm}`,
          `    service: ${options.tokenAuth.service}`,
          `    issuer: ${options.tokenAuth.issuer}`,
          `    rootcertbundle: ${options.tokenAuth.rootCertPath}`,
        ]
      : [];
    const config = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomUUID()}`,
      ...auth,
    ].join('\n');
    const configPath = join(dir, `config-${attempt}.yml`);
    await writeFile(configPath, `${config}\n`);
    const child = spawn(REGISTRY_BINARY, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const host = `127.0.0.1:${port}`;
    // Token-auth registries answer /v2/ with 401 once they are up.
    const ready = await waitUntil(async () => {
      if (child.exitCode !== null) return 'exited';
      const response = await fetch(`http://${host}/v2/`).catch(() => undefined);
      return response && (response.status === 200 || response.status === 401) ? 'up' : undefined;
    }, 10_000);
    if (ready === 'up') {
      return {
        host,
        stop: async () => {
          await stopChild(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child);
    if (attempt >= 2) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start: ${stderr.slice(-500)}`);
    }
  }
}

/**
 * A token server for distribution's `auth: token`: issues ES256 JWTs whose `x5c` header holds a
 * self-signed certificate that the registry trusts through `rootcertbundle`. Optionally requires
 * basic credentials, as Docker Hub's and GHCR's token servers do for private images.
 */
export interface TokenIssuer {
  realm: string;
  service: string;
  issuer: string;
  rootCertPath: string;
  /** Requests received: the query and whether/which basic credentials came with them. */
  requests: { service: string | null; scope: string | null; username?: string }[];
  /** A token for `repository:<name>:pull,push`, for pushing test images. */
  issue(scope: string): string;
  stop(): Promise<void>;
}

export async function startTokenIssuer(
  options: { credentials?: { username: string; password: string } } = {},
): Promise<TokenIssuer> {
  const dir = await mkdtemp(join(tmpdir(), 'materi-token-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const certificate = selfSignedCertificate('materi-test-token-issuer', privateKey, publicKey);
  const rootCertPath = join(dir, 'root.pem');
  const base64 = certificate.toString('base64');
  await writeFile(
    rootCertPath,
    `-----BEGIN CERTIFICATE-----\n${base64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`,
  );
  const service = 'materi-test-registry';
  const issuer = 'materi-test-issuer';
  const issue = (scope: string, audience = service) => {
    const [type, name, actions] = scope.split(':');
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [base64] };
    const claims = {
      iss: issuer,
      sub: options.credentials?.username ?? 'anonymous',
      aud: audience,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: type && name && actions ? [{ type, name, actions: actions.split(',') }] : [],
    };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  };
  const requests: TokenIssuer['requests'] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const basic = parseBasic(req);
    requests.push({
      service: url.searchParams.get('service'),
      scope: url.searchParams.get('scope'),
      username: basic?.username,
    });
    if (req.method !== 'GET' || url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (options.credentials) {
      if (
        !basic ||
        basic.username !== options.credentials.username ||
        basic.password !== options.credentials.password
      ) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
    }
    const token = issue(url.searchParams.get('scope') ?? '', url.searchParams.get('service') ?? service);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  const port = await listen(server);
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertPath,
    requests,
    issue: (scope) => issue(scope),
    stop: async () => {
      await closeServer(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Pushes a small OCI image (config + one layer + manifest) over the HTTP API. Returns its digest. */
export async function pushImage(
  registryHost: string,
  repository: string,
  tag: string,
  options: { token?: string } = {},
): Promise<string> {
  const base = `http://${registryHost}`;
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const layer = gzipSync(randomBytes(256));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] },
      config: {},
    }),
  );
  const uploadBlob = async (blob: Buffer): Promise<string> => {
    const digest = `sha256:${sha256(blob)}`;
    const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202)
      throw new Error(`blob upload start: HTTP ${start.status} ${await start.text()}`);
    const location = new URL(start.headers.get('location')!, base);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status} ${await put.text()}`);
    return digest;
  };
  const configDigest = await uploadBlob(config);
  const layerDigest = await uploadBlob(layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length },
      ],
    }),
  );
  const put = await fetch(`${base}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest upload: HTTP ${put.status} ${await put.text()}`);
  return `sha256:${sha256(manifest)}`;
}

export function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export function parseBasic(req: IncomingMessage): { username: string; password: string } | undefined {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString();
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A port that was free a moment ago (for servers that must be told their port up front). */
export async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

// Minimal DER encoding: enough for a self-signed X.509 v3 certificate with an EC key.
function der(tag: number, content: Buffer): Buffer {
  const length = content.length;
  const header =
    length < 0x80
      ? Buffer.from([tag, length])
      : length < 0x100
        ? Buffer.from([tag, 0x81, length])
        : Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  return Buffer.concat([header, content]);
}

function derSequence(...items: Buffer[]): Buffer {
  return der(0x30, Buffer.concat(items));
}

const ECDSA_WITH_SHA256 = der(0x06, Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
const COMMON_NAME = der(0x06, Buffer.from([0x55, 0x04, 0x03]));

function derName(commonName: string): Buffer {
  return derSequence(der(0x31, derSequence(COMMON_NAME, der(0x0c, Buffer.from(commonName)))));
}

function derUtcTime(date: Date): Buffer {
  const text = `${date.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
  return der(0x17, Buffer.from(text));
}

function selfSignedCertificate(commonName: string, privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const now = Date.now();
  const tbs = derSequence(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, Buffer.from([0x01, randomBytes(1)[0]! & 0x7f])),
    derSequence(ECDSA_WITH_SHA256),
    derName(commonName),
    derSequence(derUtcTime(new Date(now - 3_600_000)), derUtcTime(new Date(now + 86_400_000))),
    derName(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = sign('sha256', tbs, privateKey);
  return derSequence(
    tbs,
    derSequence(ECDSA_WITH_SHA256),
    der(0x03, Buffer.concat([Buffer.from([0]), signature])),
  );
}
