import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckStatus, ValidationResult } from '../../../src/events/index.js';
import { runValidation, type ValidationCheckOutcome } from '../../../src/workers/validator/index.js';
import { closeServer, freePort, listen } from './registry-harness.js';

async function checkEnv(
  item: Record<string, unknown>,
  env: Record<string, string | undefined> = {},
): Promise<ValidationCheckOutcome> {
  const outcome = await runValidation({ timeoutMs: 5000, env: [item] }, { env });
  expect(outcome.checks, outcome.message).toHaveLength(1);
  return outcome.checks[0]!;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => resolve(body));
  });
}

const SECRET_VALUE = 'postgres://app:do-not-leak-me@db.internal/app';

describe('process source', () => {
  it('passes when every required variable is set', async () => {
    const check = await checkEnv(
      { service: 'api', source: { type: 'process' }, required: ['DATABASE_URL', 'REDIS_URL'] },
      { DATABASE_URL: SECRET_VALUE, REDIS_URL: 'redis://cache:6379' },
    );
    expect(check).toMatchObject({ name: 'env:api:process', kind: 'env', status: CheckStatus.PASSED });
    expect(check.message).toBe('2 required variables set in the worker environment');
  });

  it('names the missing and empty variables, never a value', async () => {
    const check = await checkEnv(
      { service: 'api', required: ['DATABASE_URL', 'REDIS_URL', 'SENTRY_DSN', 'API_KEY'] },
      { DATABASE_URL: SECRET_VALUE, SENTRY_DSN: '' },
    );
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('missing: REDIS_URL, API_KEY; empty: SENTRY_DSN (in the worker environment)');
    expect(check.message).not.toContain('do-not-leak-me');
  });
});

describe('dotenv source', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'materi-dotenv-'));
    await writeFile(
      join(dir, '.env'),
      `# web\nAPI_URL=https://api.example.test\nSESSION_SECRET="${SECRET_VALUE}"\nEMPTY=\n`,
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the file with dotenv and finds the required names', async () => {
    const path = join(dir, '.env');
    const check = await checkEnv({
      service: 'web',
      source: { type: 'dotenv', path },
      required: ['API_URL', 'SESSION_SECRET'],
    });
    expect(check.status).toBe(CheckStatus.PASSED);
    expect(check.message).toBe(`2 required variables set in ${path}`);
  });

  it('fails naming missing and empty names', async () => {
    const path = join(dir, '.env');
    const check = await checkEnv({
      service: 'web',
      source: { type: 'dotenv', path },
      required: ['API_URL', 'CDN_URL', 'EMPTY'],
    });
    expect(check.message).toBe(`missing: CDN_URL; empty: EMPTY (in ${path})`);
  });

  it('fails when the file cannot be read', async () => {
    const path = join(dir, 'absent.env');
    const check = await checkEnv({ source: { type: 'dotenv', path }, required: ['API_URL'] });
    expect(check.message).toMatch(
      new RegExp(`^cannot read ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*ENOENT`),
    );
  });
});

describe('vercel source (local server checking the documented request)', () => {
  const token = 'vercel-token-abc123';
  let server: Server;
  let baseUrl: string;
  const requests: { method?: string; path: string; teamId: string | null; authorization?: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://vercel');
      requests.push({
        method: req.method,
        path: url.pathname,
        teamId: url.searchParams.get('teamId'),
        authorization: req.headers.authorization,
      });
      res.setHeader('content-type', 'application/json');
      if (req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(403).end(JSON.stringify({ error: { code: 'forbidden', message: 'Not authorized' } }));
        return;
      }
      if (req.method !== 'GET' || url.pathname !== '/v9/projects/prj_web/env') {
        res
          .writeHead(404)
          .end(JSON.stringify({ error: { code: 'not_found', message: 'Project not found' } }));
        return;
      }
      res.end(
        JSON.stringify({
          envs: [
            {
              id: 'env_1',
              key: 'API_URL',
              type: 'encrypted',
              value: 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..encrypted',
              target: ['production', 'preview'],
              configurationId: null,
              createdAt: 1767225600000,
              updatedAt: 1767225600000,
            },
            { id: 'env_2', key: 'PREVIEW_ONLY', type: 'plain', value: 'x', target: ['preview'] },
            { id: 'env_3', key: 'FEATURE_FLAG', type: 'plain', value: '', target: ['production'] },
            { id: 'env_4', key: 'SECRET_KEY', type: 'sensitive', target: 'production' },
          ],
          pagination: { count: 4, next: null, prev: null },
        }),
      );
    });
    baseUrl = `http://127.0.0.1:${await listen(server)}`;
  });
  afterAll(async () => {
    await closeServer(server);
  });

  const source = (extra: Record<string, unknown> = {}) => ({
    type: 'vercel',
    projectId: 'prj_web',
    teamId: 'team_materi',
    token: '${VERCEL_TOKEN}',
    baseUrl,
    target: 'production',
    ...extra,
  });

  it('lists the project variables with the bearer token and team id', async () => {
    requests.length = 0;
    const check = await checkEnv(
      { service: 'web', source: source(), required: ['API_URL', 'SECRET_KEY'] },
      { VERCEL_TOKEN: token },
    );
    expect(check).toMatchObject({ name: 'env:web:vercel', status: CheckStatus.PASSED });
    expect(check.message).toBe('2 required variables set in vercel project prj_web (production)');
    expect(requests).toEqual([
      {
        method: 'GET',
        path: '/v9/projects/prj_web/env',
        teamId: 'team_materi',
        authorization: `Bearer ${token}`,
      },
    ]);
  });

  it('counts only variables of the target and reports known-empty plain values', async () => {
    const check = await checkEnv(
      { service: 'web', source: source(), required: ['API_URL', 'PREVIEW_ONLY', 'FEATURE_FLAG'] },
      { VERCEL_TOKEN: token },
    );
    expect(check.message).toBe(
      'missing: PREVIEW_ONLY; empty: FEATURE_FLAG (in vercel project prj_web (production))',
    );
  });

  it('fails clearly when Vercel refuses the token, without echoing it', async () => {
    const check = await checkEnv(
      { source: source(), required: ['API_URL'] },
      { VERCEL_TOKEN: 'wrong-token-value' },
    );
    expect(check.message).toBe('Vercel refused the token (HTTP 403, forbidden)');
    expect(check.message).not.toContain('wrong-token-value');
  });

  it('fails clearly when the project does not exist', async () => {
    const check = await checkEnv(
      { source: source({ projectId: 'prj_gone' }), required: ['API_URL'] },
      { VERCEL_TOKEN: token },
    );
    expect(check.message).toBe('Vercel project prj_gone not found (HTTP 404, not_found)');
  });

  it('fails naming the token variable when it is not set', async () => {
    const check = await checkEnv({ source: source(), required: ['API_URL'] });
    expect(check.message).toBe('${VERCEL_TOKEN} is not set');
  });
});

describe('railway source (local server checking the documented request)', () => {
  const token = 'railway-account-token';
  const projectToken = 'railway-project-token';
  let server: Server;
  let baseUrl: string;
  const bodies: { query: string; variables: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const body = JSON.parse(await readBody(req)) as { query: string; variables: Record<string, unknown> };
      bodies.push(body);
      res.setHeader('content-type', 'application/json');
      const authorized =
        req.headers.authorization === `Bearer ${token}` ||
        req.headers['project-access-token'] === projectToken;
      const wellFormed =
        req.method === 'POST' &&
        req.url === '/graphql/v2' &&
        req.headers['content-type'] === 'application/json' &&
        /variables\(projectId: \$projectId, environmentId: \$environmentId, serviceId: \$serviceId\)/.test(
          body.query,
        );
      if (!wellFormed) {
        res.writeHead(400).end(JSON.stringify({ errors: [{ message: 'Bad request' }] }));
        return;
      }
      if (!authorized) {
        res.end(JSON.stringify({ errors: [{ message: 'Not Authorized', path: ['variables'] }], data: null }));
        return;
      }
      res.end(
        JSON.stringify({
          data: {
            variables:
              body.variables.serviceId === 'svc_api'
                ? { DATABASE_URL: SECRET_VALUE, REDIS_URL: '', RAILWAY_ENVIRONMENT: 'production' }
                : { SHARED_ONLY: '1' },
          },
        }),
      );
    });
    baseUrl = `http://127.0.0.1:${await listen(server)}/graphql/v2`;
  });
  afterAll(async () => {
    await closeServer(server);
  });

  const source = (extra: Record<string, unknown> = {}) => ({
    type: 'railway',
    projectId: 'prj_1',
    environmentId: 'env_prod',
    serviceId: 'svc_api',
    token: '${RAILWAY_TOKEN}',
    baseUrl,
    ...extra,
  });

  it('queries variables(projectId, environmentId, serviceId) and passes when all are set', async () => {
    bodies.length = 0;
    const check = await checkEnv(
      { service: 'api', source: source(), required: ['DATABASE_URL', 'RAILWAY_ENVIRONMENT'] },
      { RAILWAY_TOKEN: token },
    );
    expect(check).toMatchObject({ name: 'env:api:railway', status: CheckStatus.PASSED });
    expect(bodies[0]!.variables).toEqual({
      projectId: 'prj_1',
      environmentId: 'env_prod',
      serviceId: 'svc_api',
    });
  });

  it('sends a project token in the Project-Access-Token header', async () => {
    const check = await checkEnv(
      { source: source({ tokenType: 'project' }), required: ['DATABASE_URL'] },
      { RAILWAY_TOKEN: projectToken },
    );
    expect(check.status).toBe(CheckStatus.PASSED);
  });

  it('names missing and empty variables without their values', async () => {
    const check = await checkEnv(
      { service: 'api', source: source(), required: ['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET'] },
      { RAILWAY_TOKEN: token },
    );
    expect(check.message).toBe('missing: JWT_SECRET; empty: REDIS_URL (in railway service svc_api)');
    expect(check.message).not.toContain('do-not-leak-me');
  });

  it('reports a GraphQL error answer such as Not Authorized', async () => {
    const check = await checkEnv({ source: source(), required: ['DATABASE_URL'] }, { RAILWAY_TOKEN: 'bad' });
    expect(check.message).toBe('Railway API answered HTTP 200: Not Authorized');
  });

  it('fails with the reason when the API cannot be reached', async () => {
    const port = await freePort();
    const check = await checkEnv(
      { source: source({ baseUrl: `http://127.0.0.1:${port}/graphql/v2` }), required: ['DATABASE_URL'] },
      { RAILWAY_TOKEN: token },
    );
    expect(check.message).toMatch(/^cannot reach Railway API 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });
});

describe('env spec validation', () => {
  it('rejects an unknown source type naming the field', async () => {
    const outcome = await runValidation({ env: [{ source: { type: 'heroku' }, required: ['A'] }] });
    expect(outcome.result).toBe(ValidationResult.FAILED);
    expect(outcome.message).toMatch(/^invalid validation spec: env\[0\]\.source\.type: /);
  });

  it('rejects a required entry that is not a variable name', async () => {
    const outcome = await runValidation({ env: [{ required: ['DATABASE URL'] }] });
    expect(outcome.message).toBe('invalid validation spec: env[0].required[0]: must be a variable name');
  });
});
