import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deployStage, rollbackStage, StageFailedError } from '../../../src/orchestrator/providers/index.js';
import { environmentLookup } from '../../../src/runtime/references.js';
import { deploymentOf, type SeenRequest, stageWith, startApi, type TestApi } from './fixtures.js';

const TOKEN = 'railway-token-9b8a7c6d';
const env = environmentLookup({ RAILWAY_TOKEN: TOKEN });
const ENVIRONMENT_ID = 'env_prod';

interface FakeDeployment {
  id: string;
  status: string;
  image: string;
  staticUrl: string;
  steps: string[];
}

interface Operation {
  name: string;
  variables: Record<string, unknown>;
}

/**
 * A Railway GraphQL double (https://docs.railway.com/reference/public-api). Deployments appear
 * shortly after a deploy mutation, step through INITIALIZING → BUILDING → DEPLOYING → SUCCESS as
 * they are queried (FAILED for a broken image), and a new SUCCESS removes the older one.
 */
function fakeRailway(auth: (req: SeenRequest) => boolean) {
  const services = new Map<
    string,
    { image: string; deployments: FakeDeployment[]; pending: FakeDeployment[] }
  >();
  let next = 100;
  for (const [serviceId, name] of [
    ['svc_api', 'api'],
    ['svc_worker', 'worker'],
  ] as const) {
    const image = `ghcr.io/acme/${name}:v1.0.0`;
    services.set(serviceId, {
      image,
      pending: [],
      deployments: [
        {
          id: `d_${name}_1`,
          status: 'SUCCESS',
          image,
          staticUrl: `${name}-production.up.railway.app`,
          steps: [],
        },
        {
          id: `d_${name}_0`,
          status: 'REMOVED',
          image: `ghcr.io/acme/${name}:v0.9.0`,
          staticUrl: '',
          steps: [],
        },
      ],
    });
  }
  const operations: Operation[] = [];
  const errors = (message: string) => ({ status: 200, body: { errors: [{ message }], data: null } });
  const create = (serviceId: string, image: string, steps: string[]) => {
    const service = services.get(serviceId)!;
    const d: FakeDeployment = {
      id: `d_${next++}`,
      status: 'QUEUED',
      image,
      staticUrl: `${serviceId.replace('svc_', '')}-production.up.railway.app`,
      steps,
    };
    service.pending.push(d);
  };
  const find = (id: string) => {
    for (const [serviceId, service] of services) {
      const d = service.deployments.find((x) => x.id === id);
      if (d) return { serviceId, service, d };
    }
    return undefined;
  };

  const route = (req: SeenRequest) => {
    if (req.method !== 'POST' || req.path !== '/graphql/v2') return { status: 404, body: {} };
    if (!auth(req)) return errors('Not Authorized');
    const { query, variables } = req.body as { query: string; variables: Record<string, unknown> };
    const name = /^(?:query|mutation) (\w+)/.exec(query)?.[1] ?? '';
    operations.push({ name, variables });
    // biome-ignore lint/suspicious/noExplicitAny: GraphQL variables are checked field by field below
    const v = variables as Record<string, any>;
    switch (name) {
      case 'deployments': {
        if (!query.includes('deployments(input: $input, first: $first)')) return errors('bad document');
        if (v.input?.environmentId !== ENVIRONMENT_ID || v.input?.projectId !== 'prj_1')
          return errors('bad input');
        const service = services.get(v.input.serviceId);
        if (!service) return errors('Service not found');
        service.deployments.unshift(...service.pending.splice(0).reverse());
        const edges = service.deployments.slice(0, v.first).map((node) => ({
          node: {
            id: node.id,
            status: node.status,
            createdAt: '2026-01-01T00:00:00Z',
            staticUrl: node.staticUrl,
          },
        }));
        return { status: 200, body: { data: { deployments: { edges } } } };
      }
      case 'deployment': {
        const found = find(v.id);
        if (!found) return errors('Deployment not found');
        const { service, d } = found;
        const step = d.steps.shift();
        if (step) d.status = step;
        if (step === 'SUCCESS') {
          for (const other of service.deployments)
            if (other !== d && other.status === 'SUCCESS') other.status = 'REMOVED';
          service.image = d.image;
        }
        return {
          status: 200,
          body: { data: { deployment: { id: d.id, status: d.status, staticUrl: d.staticUrl } } },
        };
      }
      case 'serviceInstanceUpdate': {
        if (
          !query.includes(
            'serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)',
          )
        )
          return errors('bad document');
        const service = services.get(v.serviceId);
        if (!service || v.environmentId !== ENVIRONMENT_ID || typeof v.input?.source?.image !== 'string')
          return errors('bad serviceInstanceUpdate');
        service.image = v.input.source.image;
        return { status: 200, body: { data: { serviceInstanceUpdate: true } } };
      }
      case 'serviceInstanceDeploy':
      case 'serviceInstanceRedeploy': {
        if (!query.includes(`${name}(serviceId: $serviceId, environmentId: $environmentId)`))
          return errors('bad document');
        const service = services.get(v.serviceId);
        if (!service || v.environmentId !== ENVIRONMENT_ID) return errors(`bad ${name}`);
        const broken = service.image.includes('broken');
        create(
          v.serviceId,
          service.image,
          broken ? ['BUILDING', 'FAILED'] : ['INITIALIZING', 'BUILDING', 'DEPLOYING', 'SUCCESS'],
        );
        return { status: 200, body: { data: { [name]: true } } };
      }
      case 'deploymentRollback': {
        if (!query.includes('deploymentRollback(id: $id)')) return errors('bad document');
        const found = find(v.id);
        if (!found || !['SUCCESS', 'REMOVED', 'SLEEPING'].includes(found.d.status))
          return errors('Cannot rollback');
        create(found.serviceId, found.d.image, ['DEPLOYING', 'SUCCESS']);
        return { status: 200, body: { data: { deploymentRollback: true } } };
      }
      default:
        return errors(`Cannot query field "${name}"`);
    }
  };
  return { route, operations, services };
}

let railway: ReturnType<typeof fakeRailway>;
let api: TestApi;
beforeEach(async () => {
  railway = fakeRailway((req) => req.headers.authorization === `Bearer ${TOKEN}`);
  api = await startApi(railway.route);
});
afterEach(async () => {
  await api.close();
});

function railwayStage(extra: Record<string, unknown> = {}, images: Record<string, string> = {}) {
  return stageWith(
    {
      type: 'railway',
      token: '${RAILWAY_TOKEN}',
      projectId: 'prj_1',
      environmentId: ENVIRONMENT_ID,
      services: {
        api: { serviceId: 'svc_api', image: images.api ?? 'ghcr.io/acme/api:${VERSION}' },
        worker: { serviceId: 'svc_worker', image: images.worker ?? 'ghcr.io/acme/worker:${VERSION}' },
      },
      baseUrl: `${api.url}/graphql/v2`,
      pollInterval: '10ms',
      ...extra,
    },
    { name: 'railway', services: ['api', 'worker'] },
  );
}

describe('railway provider', () => {
  it('sets each service image, deploys it and waits for SUCCESS', async () => {
    const outcome = await deployStage({ stage: railwayStage(), deployment: deploymentOf(), env });
    for (const request of api.requests) {
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(request.headers['content-type']).toBe('application/json');
    }
    const forApi = railway.operations.filter(
      (op) =>
        op.variables.serviceId === 'svc_api' ||
        (op.variables.input as { serviceId?: string } | undefined)?.serviceId === 'svc_api',
    );
    expect(forApi.map((op) => op.name).slice(0, 3)).toEqual([
      'deployments',
      'serviceInstanceUpdate',
      'serviceInstanceDeploy',
    ]);
    expect(forApi[1]!.variables).toEqual({
      serviceId: 'svc_api',
      environmentId: ENVIRONMENT_ID,
      input: { source: { image: 'ghcr.io/acme/api:v2.0.0' } },
    });
    expect(forApi[0]!.variables).toEqual({
      input: { projectId: 'prj_1', environmentId: ENVIRONMENT_ID, serviceId: 'svc_api' },
      first: 20,
    });
    const byName = Object.fromEntries(outcome.artifacts.map((a) => [a.name, a.value]));
    expect(byName['api.previous_deployment_id']).toBe('d_api_1');
    expect(byName['worker.previous_deployment_id']).toBe('d_worker_1');
    expect(byName['api.deployment_id']).toMatch(/^d_\d+$/);
    expect(byName['api.url']).toBe('https://api-production.up.railway.app');
    expect(railway.services.get('svc_api')!.deployments[0]!.status).toBe('SUCCESS');
    expect(railway.services.get('svc_api')!.deployments[1]!.status).toBe('REMOVED');
    expect(outcome.log).toContain('DEPLOYING');
  });

  it('fails naming the service whose deployment FAILED', async () => {
    const error = (await deployStage({
      stage: railwayStage({}, { worker: 'ghcr.io/acme/worker:broken-${VERSION}' }),
      deployment: deploymentOf(),
      env,
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error).toBeInstanceOf(StageFailedError);
    expect(error.message).toMatch(/^railway: service worker: deployment d_\d+ ended FAILED$/);
    const names = error.artifacts.map((a) => a.name);
    expect(names).toEqual(
      expect.arrayContaining(['worker.previous_deployment_id', 'worker.deployment_id', 'api.url']),
    );
  });

  it('rolls every service back to the deployment it replaced', async () => {
    const deployed = await deployStage({ stage: railwayStage(), deployment: deploymentOf(), env });
    expect(railway.services.get('svc_api')!.image).toBe('ghcr.io/acme/api:v2.0.0');
    const before = railway.operations.length;
    const outcome = await rollbackStage({
      stage: railwayStage(),
      deployment: deploymentOf(),
      env,
      artifacts: deployed.artifacts,
    });
    const rollbacks = railway.operations.slice(before).filter((op) => op.name === 'deploymentRollback');
    expect(
      rollbacks.map((op) => op.variables).sort((a, b) => String(a.id).localeCompare(String(b.id))),
    ).toEqual([{ id: 'd_api_1' }, { id: 'd_worker_1' }]);
    expect(railway.services.get('svc_api')!.image).toBe('ghcr.io/acme/api:v1.0.0');
    expect(railway.services.get('svc_worker')!.image).toBe('ghcr.io/acme/worker:v1.0.0');
    expect(outcome.artifacts.map((a) => a.name).sort()).toEqual([
      'api.restored_deployment_id',
      'worker.restored_deployment_id',
    ]);
  });

  it('finds the deployment to restore when nothing was recorded', async () => {
    await deployStage({ stage: railwayStage(), deployment: deploymentOf(), env });
    const before = railway.operations.length;
    await rollbackStage({ stage: railwayStage(), deployment: deploymentOf(), env });
    const rollbacks = railway.operations.slice(before).filter((op) => op.name === 'deploymentRollback');
    expect(rollbacks.map((op) => op.variables.id).sort()).toEqual(['d_api_1', 'd_worker_1']);
  });

  it('skips services the failed deploy never changed', async () => {
    const outcome = await rollbackStage({
      stage: railwayStage(),
      deployment: deploymentOf(),
      env,
      artifacts: [],
    });
    expect(railway.operations.filter((op) => op.name === 'deploymentRollback')).toHaveLength(0);
    expect(outcome.log).toContain('api: the deploy created no deployment; nothing to roll back');
  });

  it('redeploys with serviceInstanceRedeploy when asked', async () => {
    await deployStage({
      stage: railwayStage({
        trigger: 'redeploy',
        services: { api: { serviceId: 'svc_api' }, worker: { serviceId: 'svc_worker' } },
      }),
      deployment: deploymentOf(),
      env,
    });
    const names = railway.operations.map((op) => op.name);
    expect(names).toContain('serviceInstanceRedeploy');
    expect(names).not.toContain('serviceInstanceDeploy');
    expect(names).not.toContain('serviceInstanceUpdate');
  });

  it('sends a project token in the Project-Access-Token header', async () => {
    await api.close();
    railway = fakeRailway(
      (req) => req.headers['project-access-token'] === TOKEN && !req.headers.authorization,
    );
    api = await startApi(railway.route);
    await deployStage({ stage: railwayStage({ tokenType: 'project' }), deployment: deploymentOf(), env });
    expect(railway.operations.length).toBeGreaterThan(4);
  });

  it('reports a refused token with the GraphQL error, never the token', async () => {
    const error = (await deployStage({
      stage: railwayStage(),
      deployment: deploymentOf(),
      env: environmentLookup({ RAILWAY_TOKEN: 'stale-token-31337' }),
    }).catch((e: unknown) => e)) as StageFailedError;
    expect(error.message).toBe('railway: deployments answered 200: Not Authorized');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain('stale-token-31337');
  });
});
