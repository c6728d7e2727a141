import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadInputError } from '../../../src/errors/index.js';
import { CheckStatus, ValidationResult } from '../../../src/events/index.js';
import {
  MANIFEST_MEDIA_TYPES,
  parseImageReference,
  runValidation,
  type ValidationCheckOutcome,
} from '../../../src/workers/validator/index.js';
import {
  closeServer,
  freePort,
  listen,
  parseBasic,
  pushImage,
  startRegistry,
  startTokenIssuer,
  type TestRegistry,
  type TokenIssuer,
} from './registry-harness.js';

async function checkImage(
  item: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<ValidationCheckOutcome> {
  const outcome = await runValidation({ timeoutMs: 5000, images: [item] }, { env });
  expect(outcome.checks).toHaveLength(1);
  return outcome.checks[0]!;
}

describe('parseImageReference', () => {
  it('normalises Docker Hub names the way the Docker CLI does', () => {
    expect(parseImageReference('nginx')).toMatchObject({
      registry: 'registry-1.docker.io',
      repository: 'library/nginx',
      tag: 'latest',
      reference: 'latest',
    });
    expect(parseImageReference('user/app:1')).toMatchObject({
      registry: 'registry-1.docker.io',
      repository: 'user/app',
      reference: '1',
    });
    expect(parseImageReference('docker.io/library/redis:7')).toMatchObject({
      registry: 'registry-1.docker.io',
      repository: 'library/redis',
      reference: '7',
    });
  });

  it('treats a first part with a dot, a port or localhost as the registry', () => {
    expect(parseImageReference('host:5000/app')).toMatchObject({
      registry: 'host:5000',
      repository: 'app',
      reference: 'latest',
    });
    expect(parseImageReference('ghcr.io/materi/api:v1.4.2')).toMatchObject({
      registry: 'ghcr.io',
      repository: 'materi/api',
      reference: 'v1.4.2',
    });
    expect(parseImageReference('localhost/app:dev')).toMatchObject({
      registry: 'localhost',
      repository: 'app',
    });
  });

  it('asks for the digest when the reference pins one', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseImageReference(`ghcr.io/x/api:v2@${digest}`)).toMatchObject({
      tag: 'v2',
      digest,
      reference: digest,
    });
  });

  it('rejects malformed references with a message naming them', () => {
    expect(() => parseImageReference('ghcr.io/X/API:v1')).toThrow(BadInputError);
    expect(() => parseImageReference('app:bad tag')).toThrow(/invalid image reference "app:bad tag"/);
    expect(() => parseImageReference('app@sha256:short')).toThrow(/digest/);
  });
});

describe('image check against a real registry (anonymous)', () => {
  let registry: TestRegistry;
  let digest: string;

  beforeAll(async () => {
    registry = await startRegistry();
    digest = await pushImage(registry.host, 'materi/api', 'v1.4.2');
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('passes for a pushed tag and reports the manifest digest', async () => {
    const check = await checkImage({ service: 'api', image: `${registry.host}/materi/api:v1.4.2` });
    expect(check).toMatchObject({ name: 'image:api', kind: 'image', status: CheckStatus.PASSED });
    expect(check.message).toBe(`image ${registry.host}/materi/api:v1.4.2 found (${digest})`);
  });

  it('passes for a digest reference', async () => {
    const check = await checkImage({ image: `${registry.host}/materi/api@${digest}` });
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(check.name).toBe(`image:${registry.host}/materi/api@${digest}`);
  });

  it('fails the check when the tag does not exist', async () => {
    const image = `${registry.host}/materi/api:v2`;
    const check = await checkImage({ service: 'api', image });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe(`image ${image} not found`);
  });

  it('fails the check when the repository does not exist', async () => {
    const check = await checkImage({ image: `${registry.host}/materi/nothing:v1` });
    expect(check.message).toBe(`image ${registry.host}/materi/nothing:v1 not found`);
  });

  it('lists the OCI and Docker manifest media types (the registry hides OCI manifests otherwise)', async () => {
    const url = `http://${registry.host}/v2/materi/api/manifests/v1.4.2`;
    const withoutAccept = await fetch(url, { method: 'HEAD' });
    const withAccept = await fetch(url, {
      method: 'HEAD',
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
    });
    expect(withoutAccept.status).toBe(404);
    expect(withAccept.status).toBe(200);
  });

  it('warns instead of failing when the image check is not blocking', async () => {
    const outcome = await runValidation({
      images: [{ service: 'api', image: `${registry.host}/materi/api:v9`, blocking: false }],
    });
    expect(outcome.result).toBe(ValidationResult.WARNINGS);
    expect(outcome.checks[0]!.status).toBe(CheckStatus.WARNING);
  });

  it('fails with the reason when the registry cannot be reached', async () => {
    const port = await freePort();
    const check = await checkImage({ image: `127.0.0.1:${port}/materi/api:v1` });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toMatch(
      new RegExp(
        `^image 127\\.0\\.0\\.1:${port}/materi/api:v1: cannot reach registry 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
      ),
    );
  });
});

describe('image check against a registry with token authentication (Bearer challenge)', () => {
  const credentials = { username: 'deployer', password: 'hunter2-registry-secret' };
  let issuer: TokenIssuer;
  let registry: TestRegistry;

  beforeAll(async () => {
    issuer = await startTokenIssuer({ credentials });
    registry = await startRegistry({ tokenAuth: issuer });
    await pushImage(registry.host, 'private/api', 'v1', {
      token: issuer.issue('repository:private/api:pull,push'),
    });
  });
  afterAll(async () => {
    await registry?.stop();
    await issuer?.stop();
  });

  it('follows the challenge to the token server with the configured credentials', async () => {
    issuer.requests.length = 0;
    const check = await checkImage(
      {
        service: 'api',
        image: `${registry.host}/private/api:v1`,
        auth: { username: '${REGISTRY_USER}', password: '${REGISTRY_PASSWORD}' },
      },
      { REGISTRY_USER: credentials.username, REGISTRY_PASSWORD: credentials.password },
    );
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(issuer.requests).toEqual([
      { service: issuer.service, scope: 'repository:private/api:pull', username: credentials.username },
    ]);
  });

  it('reports a missing tag as not found after authenticating', async () => {
    const check = await checkImage({ image: `${registry.host}/private/api:v2`, auth: credentials }, {});
    expect(check.message).toBe(`image ${registry.host}/private/api:v2 not found`);
  });

  it('fails clearly when the token server rejects the credentials, without echoing the password', async () => {
    const check = await checkImage({
      image: `${registry.host}/private/api:v1`,
      auth: { username: 'deployer', password: 'wrong-password' },
    });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toMatch(/token server 127\.0\.0\.1:\d+ rejected the credentials \(HTTP 401\)/);
    expect(check.message).not.toContain('wrong-password');
  });

  it('fails clearly when credentials are needed but none are configured', async () => {
    const check = await checkImage({ image: `${registry.host}/private/api:v1` });
    expect(check.message).toMatch(/token server 127\.0\.0\.1:\d+ requires credentials \(HTTP 401\)/);
  });

  it('fails the check naming a registry password variable that is not set', async () => {
    issuer.requests.length = 0;
    const check = await checkImage(
      {
        image: `${registry.host}/private/api:v1`,
        auth: { username: '${REGISTRY_USER}', password: '${REGISTRY_PASSWORD}' },
      },
      { REGISTRY_USER: 'deployer' },
    );
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('${REGISTRY_PASSWORD} is not set');
    expect(issuer.requests).toHaveLength(0);
  });
});

describe('image check against a registry with a Basic challenge', () => {
  // No bcrypt implementation is installed to write a htpasswd file for the real registry, so this
  // server answers the way distribution's htpasswd auth does.
  const credentials = { username: 'ci', password: 'basic-registry-secret' };
  const digest = `sha256:${'b'.repeat(64)}`;
  let server: Server;
  let host: string;
  const seen: { method?: string; accept?: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method, accept: req.headers.accept });
      const basic = parseBasic(req);
      if (!basic || basic.username !== credentials.username || basic.password !== credentials.password) {
        res.writeHead(401, {
          'www-authenticate': 'Basic realm="Registry Realm"',
          'docker-distribution-api-version': 'registry/2.0',
        });
        res.end();
        return;
      }
      if (req.url === '/v2/team/web/manifests/v3') {
        res.writeHead(200, {
          'docker-content-digest': digest,
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
        });
        res.end();
        return;
      }
      res.writeHead(404).end();
    });
    host = `127.0.0.1:${await listen(server)}`;
  });
  afterAll(async () => {
    await closeServer(server);
  });

  it('answers the challenge with the credentials and passes', async () => {
    seen.length = 0;
    const check = await checkImage({ image: `${host}/team/web:v3`, auth: credentials });
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(check.message).toContain(digest);
    expect(seen.map((s) => s.method)).toEqual(['HEAD', 'HEAD']);
    for (const type of MANIFEST_MEDIA_TYPES) expect(seen[1]!.accept).toContain(type);
  });

  it('fails with "requires credentials" when none are configured', async () => {
    const check = await checkImage({ image: `${host}/team/web:v3` });
    expect(check.message).toBe(
      `cannot read image ${host}/team/web:v3: registry ${host} requires credentials (HTTP 401)`,
    );
  });

  it('fails with "rejected the credentials" when they are wrong', async () => {
    const check = await checkImage({
      image: `${host}/team/web:v3`,
      auth: { username: 'ci', password: 'nope-nope' },
    });
    expect(check.message).toBe(
      `cannot read image ${host}/team/web:v3: registry ${host} rejected the credentials (HTTP 401 after authenticating)`,
    );
  });
});

describe('image spec validation', () => {
  it('gives ERRORED naming the field for a malformed literal image reference', async () => {
    const outcome = await runValidation({ images: [{ service: 'api', image: 'ghcr.io/Materi/API:v1' }] });
    expect(outcome.result).toBe(ValidationResult.FAILED);
    expect(outcome.message).toMatch(/^invalid validation spec: images\[0\]\.image: invalid image reference/);
  });

  it('gives ERRORED naming an unknown setting', async () => {
    const outcome = await runValidation({ images: [{ image: 'nginx', auth: { user: 'x', password: 'y' } }] });
    expect(outcome.message).toBe('invalid validation spec: images[0].auth.user: unknown setting');
  });
});
