import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deployStage, rollbackStage, StageFailedError } from '../../../src/orchestrator/providers/index.js';
import { environmentLookup } from '../../../src/runtime/references.js';
import { deploymentOf, type SeenRequest, stageWith, startApi, type TestApi } from './fixtures.js';

const TOKEN = 'vercel-token-4f1d2a9c';
const env = environmentLookup({ VERCEL_TOKEN: TOKEN });

interface FakeDeployment {
  id: string;
  url: string;
  target: string | null;
  meta: Record<string, string>;
  states: string[];
  errorMessage?: string;
  created: number;
}

/**
 * A Vercel API double that checks requests as https://vercel.com/docs/rest-api documents them and
 * answers in the same shapes: deployments move QUEUED → BUILDING → READY (or ERROR) as they are polled.
 */
function fakeVercel() {
  const deployments = new Map<string, FakeDeployment>();
  let production = 'dpl_1';
  let next = 2;
  deployments.set('dpl_1', {
    id: 'dpl_1',
    url: 'web-1-acme.vercel.app',
    target: 'production',
    meta: { materiVersion: 'v1.0.0', materiDeploymentId: 'dep-0' },
    states: ['READY'],
    created: 1,
  });
  const state = (d: FakeDeployment) => d.states[0]!;
  const forbidden = { status: 403, body: { error: { code: 'forbidden', message: 'Not authorized' } } };
  const bad = (message: string) => ({ status: 400, body: { error: { code: 'bad_request', message } } });

  const route = (req: SeenRequest) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return forbidden;
    if (req.query.teamId !== 'team_1') return forbidden;
    if (req.method === 'GET' && req.path === '/v6/deployments') {
      const { projectId, target, state: wanted, limit } = req.query;
      if (
        projectId !== 'prj_web' ||
        target !== 'production' ||
        wanted !== 'READY' ||
        !/^\d+$/.test(limit ?? '')
      )
        return bad(`unexpected query ${JSON.stringify(req.query)}`);
      const list = [...deployments.values()]
        .filter((d) => d.target === 'production' && state(d) === 'READY')
        .sort((a, b) => b.created - a.created)
        .slice(0, Number(limit))
        .map((d) => ({
          uid: d.id,
          name: 'web',
          url: d.url,
          created: d.created,
          state: 'READY',
          readyState: 'READY',
          target: 'production',
          meta: d.meta,
        }));
      return {
        status: 200,
        body: { deployments: list, pagination: { count: list.length, next: null, prev: null } },
      };
    }
    if (req.method === 'POST' && req.path === '/v13/deployments') {
      const body = req.body as Record<string, unknown>;
      if (typeof body?.name !== 'string') return bad("Invalid request: should have required property 'name'");
      if (body.project !== 'prj_web') return bad('Invalid request: project');
      const gitSource = body.gitSource as { type?: string; ref?: string; repoId?: number } | undefined;
      if (!gitSource && typeof body.deploymentId !== 'string') return bad('Invalid request: missing files');
      if (gitSource && (gitSource.type !== 'github' || !gitSource.ref || !gitSource.repoId))
        return bad('Invalid request: gitSource');
      const meta = body.meta as Record<string, unknown>;
      if (Object.values(meta ?? {}).some((v) => typeof v !== 'string'))
        return bad('meta values must be strings');
      const id = `dpl_${next}`;
      const broken = gitSource?.ref?.includes('broken');
      const d: FakeDeployment = {
        id,
        url: `web-${next}-acme.vercel.app`,
        target: (body.target as string | undefined) ?? null,
        meta: meta as Record<string, string>,
        states: broken ? ['QUEUED', 'BUILDING', 'ERROR'] : ['QUEUED', 'BUILDING', 'BUILDING', 'READY'],
        errorMessage: broken ? 'Command "npm run build" exited with 1' : undefined,
        created: next,
      };
      next++;
      deployments.set(id, d);
      return {
        status: 200,
        body: { id, url: d.url, name: body.name, readyState: 'QUEUED', status: 'QUEUED', target: d.target },
      };
    }
    const get = /^\/v13\/deployments\/([\w.-]+)$/.exec(req.path);
    if (req.method === 'GET' && get) {
      const d = deployments.get(get[1]!);
      if (!d) return { status: 404, body: { error: { code: 'not_found', message: 'Deployment not found' } } };
      if (d.states.length > 1) d.states.shift();
      if (state(d) === 'READY' && d.target === 'production') production = d.id;
      return {
        status: 200,
        body: {
          id: d.id,
          url: d.url,
          readyState: state(d),
          status: state(d),
          target: d.target,
          ...(state(d) === 'ERROR' ? { errorMessage: d.errorMessage, errorCode: 'BUILD_FAILED' } : {}),
        },
      };
    }
    const promote = /^\/v10\/projects\/([\w-]+)\/promote\/([\w-]+)$/.exec(req.path);
    if (req.method === 'POST' && promote) {
      const d = deployments.get(promote[2]!);
      if (promote[1] !== 'prj_web' || !d || state(d) !== 'READY') return bad('cannot promote');
      d.target = 'production';
      d.created = next++;
      production = d.id;
      return { status: 201, body: {} };
    }
    const rollback = /^\/v9\/projects\/([\w-]+)\/rollback\/([\w-]+)$/.exec(req.path);
    if (req.method === 'POST' && rollback) {
      const d = deployments.get(rollback[2]!);
      if (rollback[1] !== 'prj_web' || !d || d.target !== 'production') return bad('cannot roll back');
      production = d.id;
      return { status: 201, body: {} };
    }
    return {
      status: 404,
      body: { error: { code: 'not_found', message: `no route ${req.method} ${req.path}` } },
    };
  };
  return { route, production: () => production, deployments };
}

let vercel: ReturnType<typeof fakeVercel>;
let api: TestApi;
beforeEach(async () => {
  vercel = fakeVercel();
  api = await startApi(vercel.route);
});
afterEach(async () => {
  await api.close();
});

function webStage(extra: Record<string, unknown> = {}) {
  return stageWith({
    type: 'vercel',
    token: '${VERCEL_TOKEN}',
    project: 'prj_web',
    name: 'web',
    teamId: 'team_1',
    gitSource: { type: 'github', repoId: 123456, ref: '${VERSION}' },
    baseUrl: api.url,
    pollInterval: '10ms',
    ...extra,
  });
}

describe('vercel provider', () => {
  it('creates a production deployment from a git ref and waits until it is READY', async () => {
    const outcome = await deployStage({ stage: webStage(), deployment: deploymentOf(), env });
    const calls = api.requests.map((r) => `${r.method} ${r.path}`);
    expect(calls).toEqual([
      'GET /v6/deployments',
      'POST /v13/deployments',
      'GET /v13/deployments/dpl_2',
      'GET /v13/deployments/dpl_2',
      'GET /v13/deployments/dpl_2',
    ]);
    expect(api.requests[0]!.query).toEqual({
      projectId: 'prj_web',
      target: 'production',
      state: 'READY',
      limit: '1',
      teamId: 'team_1',
    });
    expect(api.requests[1]!.body).toEqual({
      name: 'web',
      project: 'prj_web',
      target: 'production',
      gitSource: { type: 'github', repoId: 123456, ref: 'v2.0.0' },
      meta: { materiVersion: 'v2.0.0', materiDeploymentId: 'dep-1', materiStage: 'web' },
    });
    for (const request of api.requests) {
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(request.query.teamId).toBe('team_1');
    }
    expect(outcome.artifacts).toEqual([
      { name: 'previous_deployment_id', kind: 'id', value: 'dpl_1' },
      { name: 'deployment_id', kind: 'id', value: 'dpl_2' },
      { name: 'url', kind: 'url', value: 'https://web-2-acme.vercel.app' },
    ]);
    expect(outcome.log).toContain('readyState=BUILDING');
    expect(vercel.production()).toBe('dpl_2');
  });

  it('fails when the build ends in ERROR, keeping what it recorded', async () => {
    const error = (await deployStage({
      stage: webStage({ gitSource: { type: 'github', repoId: 123456, ref: 'broken-${VERSION}' } }),
      deployment: deploymentOf(),
      env,
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error).toBeInstanceOf(StageFailedError);
    expect(error.message).toBe('vercel: deployment dpl_2 ended ERROR: Command "npm run build" exited with 1');
    expect(error.artifacts.map((a) => `${a.name}=${a.value}`)).toEqual([
      'previous_deployment_id=dpl_1',
      'deployment_id=dpl_2',
    ]);
    expect(vercel.production()).toBe('dpl_1');
  });

  it('rolls production back to the deployment it replaced', async () => {
    const deployed = await deployStage({ stage: webStage(), deployment: deploymentOf(), env });
    expect(vercel.production()).toBe('dpl_2');
    const before = api.requests.length;
    const outcome = await rollbackStage({
      stage: webStage(),
      deployment: deploymentOf(),
      env,
      artifacts: deployed.artifacts,
    });
    const [call] = api.requests.slice(before);
    expect(api.requests.length - before).toBe(1);
    expect(call).toMatchObject({ method: 'POST', path: '/v9/projects/prj_web/rollback/dpl_1' });
    expect(call!.query).toEqual({ teamId: 'team_1', description: 'materi: roll back deployment dep-1' });
    expect(vercel.production()).toBe('dpl_1');
    expect(outcome.artifacts).toEqual([{ name: 'restored_deployment_id', kind: 'id', value: 'dpl_1' }]);
  });

  it('finds the previous production deployment by its version when nothing was recorded', async () => {
    await deployStage({ stage: webStage(), deployment: deploymentOf(), env });
    const before = api.requests.length;
    await rollbackStage({ stage: webStage(), deployment: deploymentOf(), env });
    const calls = api.requests.slice(before);
    expect(calls.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /v6/deployments',
      'POST /v9/projects/prj_web/rollback/dpl_1',
    ]);
    expect(calls[0]!.query.limit).toBe('20');
    expect(vercel.production()).toBe('dpl_1');
  });

  it('promotes a staged deployment to production when asked', async () => {
    const outcome = await deployStage({
      stage: webStage({ target: 'staging', promote: true }),
      deployment: deploymentOf(),
      env,
    });
    const last = api.requests.at(-1)!;
    expect(`${last.method} ${last.path}`).toBe('POST /v10/projects/prj_web/promote/dpl_2');
    expect(api.requests[1]!.body).toMatchObject({ target: 'staging' });
    expect(vercel.production()).toBe('dpl_2');
    expect(outcome.log).toContain('promoted dpl_2 to production');
  });

  it('redeploys an existing deployment by id', async () => {
    await deployStage({
      stage: webStage({ gitSource: undefined, deploymentId: 'dpl_1' }),
      deployment: deploymentOf(),
      env,
    });
    const body = api.requests[1]!.body as Record<string, unknown>;
    expect(body.deploymentId).toBe('dpl_1');
    expect(body).not.toHaveProperty('gitSource');
  });

  it('reports a refused token with Vercel error code and message, never the token', async () => {
    const error = (await deployStage({
      stage: webStage(),
      deployment: deploymentOf(),
      env: environmentLookup({ VERCEL_TOKEN: 'revoked-token-77777' }),
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error.message).toBe('vercel: GET /v6/deployments answered 403 forbidden: Not authorized');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain('revoked-token-77777');
  });

  it('does not touch production when rolling back a preview deployment', async () => {
    const outcome = await rollbackStage({
      stage: webStage({ target: 'preview' }),
      deployment: deploymentOf(),
      env,
    });
    expect(api.requests).toHaveLength(0);
    expect(outcome.log).toBe('target preview without promote: production was not changed');
  });
});
