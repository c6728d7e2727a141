/**
 * The tokens file (strict reading, reload on change), `materi token create`, and dashboard
 * sessions (a signed cookie, never the token; re-checked against the file on every request).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createApiServer, parseTokensFile, SESSION_COOKIE, sha256Hex } from '../../src/api/index.js';
import { createToken, registerTokenCommands } from '../../src/cli/token.js';
import { ConfigError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { runMateri } from '../support/materi-cli.js';

let dir: string;
let file: string;
const apps: FastifyInstance[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'materi-tokens-'));
  file = path.join(dir, 'tokens.yaml');
});
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  await rm(dir, { recursive: true, force: true });
});

async function server(settings: { tokensFile?: string; apiToken?: string; viewerToken?: string }) {
  const errors: string[] = [];
  const logger = silentLogger();
  logger.error = ((_: unknown, message: string) => errors.push(message)) as unknown as typeof logger.error;
  const app = await createApiServer({ auth: settings, logger });
  app.get('/api/things', async (request) => ({ actor: request.actor ?? null }));
  app.post('/api/things', { config: { access: 'write' } }, async (request) => ({ actor: request.actor }));
  await app.ready();
  apps.push(app);
  return { app, errors };
}

const line = (name: string, secret: string, role: string, extra = '') =>
  `  - { name: ${name}, sha256: ${sha256Hex(secret)}, role: ${role}${extra} }`;

describe('the tokens file', () => {
  it('refuses mistakes with one line naming the file, the entry and the field', () => {
    const hash = sha256Hex('s');
    const cases: [string, string][] = [
      ['tokens: [{ name: ci, sha256: abc, role: admin }]', 'f.yaml: tokens[0] (ci): sha256: must be'],
      [`tokens: [{ name: ci, sha256: ${hash}, role: boss }]`, 'f.yaml: tokens[0] (ci): role: must be'],
      [
        `tokens: [{ name: ci, sha256: ${hash}, role: admin, env: [x] }]`,
        'tokens[0] (ci): unknown field "env"',
      ],
      [`tokens: [{ name: "a b", sha256: ${hash}, role: admin }]`, 'f.yaml: tokens[0]: name: must be'],
      [
        `tokens: [{ name: ci, sha256: ${hash}, role: viewer, environments: [prod] }]`,
        'tokens[0] (ci): environments: only a deployer',
      ],
      [
        `tokens: [{ name: ci, sha256: ${hash}, role: deployer, environments: [] }]`,
        'tokens[0] (ci): environments: must be a non-empty list',
      ],
      [
        `tokens: [{ name: ci, sha256: ${hash}, role: admin }, { name: ci, sha256: ${sha256Hex('t')}, role: viewer }]`,
        'f.yaml: tokens[1] (ci): name: duplicate name "ci"',
      ],
      ['tokns: []', 'f.yaml: unknown field "tokns"'],
    ];
    for (const [text, message] of cases) {
      let error: unknown;
      try {
        parseTokensFile(text, 'f.yaml');
      } catch (caught) {
        error = caught;
      }
      expect(error, text).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(message);
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('refuses to start with a missing or invalid file', async () => {
    await expect(server({ tokensFile: file })).rejects.toThrow(
      `${file}: cannot read the tokens file (ENOENT)`,
    );
    await writeFile(file, 'tokens: [{ name: ci }]');
    await expect(server({ tokensFile: file })).rejects.toThrow(ConfigError);
  });

  it('reads the file again when it changes; an invalid version keeps the tokens read before', async () => {
    await writeFile(file, ['tokens:', line('ana', 'a-secret', 'deployer'), ''].join('\n'));
    const { app, errors } = await server({ tokensFile: file });
    const post = (secret: string) =>
      app.inject({ method: 'POST', url: '/api/things', headers: { authorization: `Bearer ${secret}` } });
    expect((await post('a-secret')).json()).toEqual({ actor: 'ana' });
    expect((await post('b-secret')).statusCode).toBe(401);

    await writeFile(file, ['tokens:', line('bo', 'b-secret', 'admin'), ''].join('\n'));
    expect((await post('b-secret')).json()).toEqual({ actor: 'bo' });
    expect((await post('a-secret')).statusCode).toBe(401);

    await writeFile(file, 'tokens: [{ name: bo, role: admin }]\n');
    expect((await post('b-secret')).json()).toEqual({ actor: 'bo' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('sha256: must be');
    expect(errors[0]).toContain('the tokens read before stay in force');
    expect((await post('b-secret')).statusCode).toBe(200);
    expect(errors).toHaveLength(1);
  });

  it('keeps the two legacy variables as an admin "api-token" and a viewer "viewer-token"', async () => {
    await writeFile(file, ['tokens:', line('ana', 'a-secret', 'viewer'), ''].join('\n'));
    const { app } = await server({ tokensFile: file, apiToken: 'op', viewerToken: 'view' });
    const post = (secret: string) =>
      app.inject({ method: 'POST', url: '/api/things', headers: { authorization: `Bearer ${secret}` } });
    expect((await post('op')).json()).toEqual({ actor: 'api-token' });
    expect((await post('view')).json().error.message).toContain('token "viewer-token" (viewer)');
    expect((await post('a-secret')).json().error.code).toBe('MATERI_ERR_FORBIDDEN');
    // With a tokens file, reads need a token too.
    expect((await app.inject({ method: 'GET', url: '/api/things' })).statusCode).toBe(401);
  });
});

describe('materi token create', () => {
  it('appends the hashed entry to a file it creates with mode 0600, and returns the secret once', async () => {
    const secret = await createToken(file, { name: 'ci', role: 'deployer', environments: ['staging'] });
    expect(secret).toMatch(/^mt_[A-Za-z0-9_-]{43}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(secret);
    expect(parseTokensFile(text, file)).toEqual([
      { name: 'ci', role: 'deployer', sha256: sha256Hex(secret), environments: ['staging'] },
    ]);
    const second = await createToken(file, { name: 'ops', role: 'admin' });
    expect(second).not.toBe(secret);
    expect(parseTokensFile(await readFile(file, 'utf8'), file).map((t) => t.name)).toEqual(['ci', 'ops']);
    await expect(createToken(file, { name: 'ci', role: 'viewer' })).rejects.toThrow(
      `${file} already has a token named "ci"`,
    );
    await expect(createToken(file, { name: 'x', role: 'viewer', environments: ['p'] })).rejects.toThrow(
      '--env limits a deployer token',
    );
  });

  it('prints the secret alone on stdout and a note on stderr; refuses without a file', async () => {
    vi.stubEnv('MATERI_TOKENS_FILE', file);
    try {
      const created = await runMateri([registerTokenCommands], ['token', 'create', 'ci', '--role', 'viewer']);
      expect(created.code).toBe(0);
      const secret = created.stdout.trim();
      expect(secret).toMatch(/^mt_[A-Za-z0-9_-]{43}$/);
      expect(created.stderr).toBe(
        `materi: token "ci" (viewer) added to ${file}; this is the only time its secret is shown\n`,
      );
      expect(parseTokensFile(await readFile(file, 'utf8'), file)[0]!.sha256).toBe(sha256Hex(secret));
      vi.stubEnv('MATERI_TOKENS_FILE', '');
      const refused = await runMateri([registerTokenCommands], ['token', 'create', 'x', '--role', 'admin']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe('materi: no tokens file: give --file or set MATERI_TOKENS_FILE\n');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('makes a token the running server accepts at once', async () => {
    await writeFile(file, 'tokens: []\n');
    const { app } = await server({ tokensFile: file });
    const secret = await createToken(file, { name: 'late', role: 'deployer' });
    const answer = await app.inject({
      method: 'POST',
      url: '/api/things',
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(answer.json()).toEqual({ actor: 'late' });
  });
});

describe('dashboard sessions', () => {
  async function login(app: FastifyInstance, token: string) {
    return app.inject({ method: 'POST', url: '/api/session', payload: { token } });
  }
  const cookieOf = (setCookie: string | string[] | undefined) => String(setCookie).split(';')[0]!;

  it('sets a signed HttpOnly, SameSite=Strict cookie that is not the token, and acts as that token', async () => {
    await writeFile(
      file,
      ['tokens:', line('ana', 'a-secret', 'deployer', ', environments: [staging]'), ''].join('\n'),
    );
    const { app } = await server({ tokensFile: file });
    expect((await login(app, 'wrong')).json().error.code).toBe('MATERI_ERR_UNAUTHORIZED');
    const opened = await login(app, 'a-secret');
    expect(opened.statusCode).toBe(200);
    expect(opened.json()).toMatchObject({ name: 'ana', role: 'deployer', environments: ['staging'] });
    const setCookie = String(opened.headers['set-cookie']);
    expect(setCookie).toMatch(
      new RegExp(`^${SESSION_COOKIE}=[^;]+; Path=/; HttpOnly; SameSite=Strict; Max-Age=\\d+$`),
    );
    expect(setCookie).not.toContain('a-secret');
    const cookie = cookieOf(setCookie);
    const post = await app.inject({ method: 'POST', url: '/api/things', headers: { cookie } });
    expect(post.json()).toEqual({ actor: 'ana' });
    const info = await app.inject({ method: 'GET', url: '/api/info', headers: { cookie } });
    expect(info.json().caller).toEqual({
      canWrite: true,
      identity: { name: 'ana', role: 'deployer', environments: ['staging'] },
    });

    // A forged or altered cookie is no session.
    const [name, expiry, mac] = cookie.split('=')[1]!.split('.');
    const forged = `${SESSION_COOKIE}=${Buffer.from('root').toString('base64url')}.${expiry}.${mac}`;
    expect(
      (await app.inject({ method: 'POST', url: '/api/things', headers: { cookie: forged } })).statusCode,
    ).toBe(401);
    const longer = `${SESSION_COOKIE}=${name}.${Number(expiry) + 1000}.${mac}`;
    expect(
      (await app.inject({ method: 'POST', url: '/api/things', headers: { cookie: longer } })).statusCode,
    ).toBe(401);

    const closed = await app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie } });
    expect(closed.statusCode).toBe(204);
    expect(String(closed.headers['set-cookie'])).toContain(
      `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`,
    );
    // A copy of the signed-out cookie is no session either.
    expect((await app.inject({ method: 'POST', url: '/api/things', headers: { cookie } })).statusCode).toBe(
      401,
    );
  });

  it('marks the cookie Secure when the request came over https', async () => {
    await writeFile(file, ['tokens:', line('ana', 'a-secret', 'viewer'), ''].join('\n'));
    const app = await createApiServer({ auth: { tokensFile: file }, logger: silentLogger() });
    apps.push(app);
    // Behind a TLS-terminating proxy fastify reads the protocol from x-forwarded-proto only with
    // trustProxy; here the request itself is marked as https.
    app.addHook('onRequest', async (request) => {
      Object.defineProperty(request, 'protocol', { value: 'https' });
    });
    await app.ready();
    const opened = await login(app, 'a-secret');
    expect(String(opened.headers['set-cookie'])).toMatch(/; Secure$/);
  });

  it('marks the cookie Secure behind a TLS proxy that says X-Forwarded-Proto: https, and not over plain http', async () => {
    await writeFile(file, ['tokens:', line('ana', 'a-secret', 'viewer'), ''].join('\n'));
    const app = await createApiServer({ auth: { tokensFile: file }, logger: silentLogger() });
    apps.push(app);
    const proxied = await app.inject({
      method: 'POST',
      url: '/api/session',
      headers: { 'x-forwarded-proto': 'https' },
      payload: { token: 'a-secret' },
    });
    expect(String(proxied.headers['set-cookie'])).toMatch(/; Secure$/);
    expect(String((await login(app, 'a-secret')).headers['set-cookie'])).not.toContain('Secure');
  });

  it('ends when the token is removed from the file or given a new secret', async () => {
    await writeFile(
      file,
      ['tokens:', line('ana', 'a-secret', 'deployer'), line('bo', 'b-secret', 'deployer'), ''].join('\n'),
    );
    const { app } = await server({ tokensFile: file });
    const ana = cookieOf((await login(app, 'a-secret')).headers['set-cookie']);
    const bo = cookieOf((await login(app, 'b-secret')).headers['set-cookie']);
    const post = (cookie: string) => app.inject({ method: 'POST', url: '/api/things', headers: { cookie } });
    expect((await post(ana)).statusCode).toBe(200);
    await writeFile(file, ['tokens:', line('bo', 'b-secret-2', 'deployer'), ''].join('\n'));
    expect((await post(ana)).statusCode).toBe(401);
    expect((await post(bo)).statusCode).toBe(401);
  });

  it('no longer takes the token in the URL', async () => {
    await writeFile(file, ['tokens:', line('ana', 'a-secret', 'viewer'), ''].join('\n'));
    const { app } = await server({ tokensFile: file });
    const answer = await app.inject({ method: 'GET', url: '/api/things?access_token=a-secret' });
    expect(answer.statusCode).toBe(401);
    expect(answer.json().error.code).toBe('MATERI_ERR_UNAUTHORIZED');
  });
});
