import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Artifact,
  deployStage,
  rollbackStage,
  StageFailedError,
} from '../../../src/orchestrator/providers/index.js';
import { environmentLookup } from '../../../src/runtime/references.js';
import { deploymentOf, freePort, type SeenRequest, stageWith, startApi, type TestApi } from './fixtures.js';

const TOKEN = 'hook-token-0123456789';
const env = environmentLookup({ FOLIO_HOOK_TOKEN: TOKEN });

/** A folio-like host: a deploy hook that queues a job, and a job status that moves on each poll. */
let api: TestApi;
const jobs = new Map<string, { version: string; states: string[] }>();
let nextJob = 1;

beforeAll(async () => {
  api = await startApi((req: SeenRequest) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`)
      return { status: 401, body: { error: 'unauthorized' } };
    if (req.method === 'POST' && req.path === '/api/deploy') {
      const body = req.body as { version?: string; environment?: string };
      if (!body?.version) return { status: 422, body: { error: 'version is required' } };
      const id = `job-${nextJob++}`;
      const states = body.version.includes('broken')
        ? ['queued', 'building', 'error']
        : ['queued', 'building', 'building', 'ready'];
      jobs.set(id, { version: body.version, states });
      return { status: 202, body: { job: { id, state: 'queued' } } };
    }
    const job = /^\/api\/jobs\/([\w-]+)$/.exec(req.path);
    if (req.method === 'GET' && job) {
      const found = jobs.get(job[1]!);
      if (!found) return { status: 404, body: { error: 'no such job' } };
      const state = found.states.length > 1 ? found.states.shift()! : found.states[0]!;
      return {
        status: 200,
        body: { job: { id: job[1], state, url: `https://folio.example/${found.version}` } },
      };
    }
    if (req.method === 'POST' && req.path === '/api/rollback') return { status: 200, body: { ok: true } };
    if (req.method === 'GET' && req.path === '/api/stuck')
      return { status: 200, body: { job: { state: 'building' } } };
    return { status: 404, body: { error: 'not found' } };
  });
});
afterAll(async () => {
  await api.close();
});

function folioStage(extra: Record<string, unknown> = {}) {
  return stageWith(
    {
      type: 'http',
      deploy: {
        url: `${api.url}/api/deploy`,
        headers: { Authorization: 'Bearer ${FOLIO_HOOK_TOKEN}' },
        body: { version: '${VERSION}', environment: '${ENVIRONMENT}', deployment: '${DEPLOYMENT_ID}' },
        idField: 'job.id',
      },
      poll: {
        url: `${api.url}/api/jobs/\${HOOK_ID}`,
        headers: { Authorization: 'Bearer ${FOLIO_HOOK_TOKEN}' },
        interval: '20ms',
        field: 'job.state',
        success: ['ready'],
        failure: ['error'],
        urlField: 'job.url',
      },
      ...extra,
    },
    { name: 'folio', services: ['docs'] },
  );
}

describe('http provider', () => {
  it('calls the deploy hook and polls the job until it is ready', async () => {
    const before = api.requests.length;
    const recorded: Artifact[] = [];
    const outcome = await deployStage({
      stage: folioStage(),
      deployment: deploymentOf(),
      env,
      onArtifact: (a) => recorded.push(a),
    });
    const seen = api.requests.slice(before);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      path: '/api/deploy',
      body: { version: 'v2.0.0', environment: 'production', deployment: 'dep-1' },
    });
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    const id = (outcome.artifacts.find((a) => a.name === 'hook_id') as Artifact).value;
    expect(seen.slice(1).map((r) => `${r.method} ${r.path}`)).toEqual(Array(4).fill(`GET /api/jobs/${id}`));
    expect(outcome.artifacts).toContainEqual({
      name: 'url',
      kind: 'url',
      value: 'https://folio.example/v2.0.0',
    });
    expect(recorded.map((a) => a.name)).toEqual(['hook_id', 'url']);
    expect(outcome.log).toContain('job.state=building');
    expect(outcome.log).toContain('job.state=ready');
  });

  it('fails when the job reaches a failure value', async () => {
    const error = await deployStage({
      stage: folioStage(),
      deployment: deploymentOf({ version: 'v3-broken' }),
      env,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StageFailedError);
    expect((error as Error).message).toMatch(
      /^status poll GET http:\/\/127\.0\.0\.1:\d+\/api\/jobs\/job-\d+: job\.state is "error"$/,
    );
    expect((error as StageFailedError).artifacts.map((a) => a.name)).toEqual(['hook_id']);
  });

  it('fails with the status and the answer when the hook refuses, without showing the token', async () => {
    const error = await deployStage({
      stage: folioStage(),
      deployment: deploymentOf(),
      env: environmentLookup({ FOLIO_HOOK_TOKEN: 'wrong-token-value' }),
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /^deploy hook POST http:\/\/127\.0\.0\.1:\d+\/api\/deploy answered 401: \{"error":"unauthorized"\}$/,
    );
    expect(JSON.stringify(error)).not.toContain('wrong-token-value');
  });

  it('rolls back with the rollback hook when one is set', async () => {
    const before = api.requests.length;
    const outcome = await rollbackStage({
      stage: folioStage({
        rollback: {
          url: `${api.url}/api/rollback`,
          headers: { Authorization: 'Bearer ${FOLIO_HOOK_TOKEN}' },
          body: 'restore=${VERSION}&from=${DEPLOYMENT_ID}',
          expectStatus: [200],
        },
      }),
      deployment: deploymentOf(),
      env,
    });
    const seen = api.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      path: '/api/rollback',
      text: 'restore=v1.0.0&from=dep-1',
    });
    expect(outcome.log).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/api\/rollback -> 200/);
  });

  it('rolls back by calling the deploy hook with the previous version when no rollback hook is set', async () => {
    const before = api.requests.length;
    const outcome = await rollbackStage({ stage: folioStage(), deployment: deploymentOf(), env });
    expect(api.requests[before]).toMatchObject({ path: '/api/deploy', body: { version: 'v1.0.0' } });
    expect(outcome.artifacts).toContainEqual({
      name: 'url',
      kind: 'url',
      value: 'https://folio.example/v1.0.0',
    });
  });

  it('fails when an expected status is not met', async () => {
    const error = await deployStage({
      stage: stageWith({
        type: 'http',
        deploy: {
          url: `${api.url}/api/rollback`,
          headers: { Authorization: `Bearer ${TOKEN}` },
          expectStatus: [201],
        },
      }),
      deployment: deploymentOf(),
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/answered 200: \{"ok":true\}$/);
  });

  it('gives up polling when the stage times out', async () => {
    const error = (await deployStage({
      stage: stageWith(
        {
          type: 'http',
          deploy: {
            url: `${api.url}/api/deploy`,
            headers: { Authorization: `Bearer ${TOKEN}` },
            body: { version: 'x' },
          },
          poll: {
            url: `${api.url}/api/stuck`,
            headers: { Authorization: `Bearer ${TOKEN}` },
            interval: '20ms',
            field: 'job.state',
            success: ['ready'],
          },
        },
        { timeoutMs: 300 },
      ),
      deployment: deploymentOf(),
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error.message).toBe('deploy timed out after 300ms');
    expect(error.kind).toBe('timeout');
  });

  it('names an unreachable hook', async () => {
    const port = await freePort();
    const error = await deployStage({
      stage: stageWith({ type: 'http', deploy: { url: `http://127.0.0.1:${port}/hook?key=abc` } }),
      deployment: deploymentOf(),
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /^deploy hook POST http:\/\/127\.0\.0\.1:\d+\/hook\?\*\*\* failed: .*ECONNREFUSED/,
    );
  });
});
