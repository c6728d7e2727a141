import type { FastifyInstance, FastifyRequest } from 'fastify';
import { actorOf, assertAdmin, assertEnvironment } from '../api/auth.js';
import type { Release } from './ledger.js';
import type { Orchestrator } from './orchestrator.js';

const deployBody = {
  type: 'object',
  required: ['plan', 'version'],
  additionalProperties: false,
  properties: {
    plan: { type: 'string', minLength: 1, description: 'The plan file (YAML text)' },
    planSource: { type: 'string', description: 'Where the plan came from (a path), for messages' },
    baseDir: { type: 'string', description: 'Directory for relative paths in provider settings' },
    version: { type: 'string', minLength: 1 },
    environment: { type: 'string' },
    vars: { type: 'object', additionalProperties: { type: 'string' } },
    triggeredBy: {
      type: 'string',
      maxLength: 200,
      description: 'Who deploys; ignored when a token authenticates the request (its name is recorded)',
    },
    queue: { type: 'boolean', description: 'Wait for a busy environment instead of being refused' },
    overrideFreeze: {
      type: 'boolean',
      description:
        'Deploy into a frozen environment (freeze window or open critical incident); needs overrideReason',
    },
    overrideReason: {
      type: 'string',
      maxLength: 500,
      description: 'Why the freeze is overridden; recorded with the deployment',
    },
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
} as const;

const environmentParams = {
  type: 'object',
  required: ['project', 'environment'],
  properties: {
    project: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$' },
    environment: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$' },
  },
} as const;

/** A release as the API shows it: times in RFC 3339. */
function releaseJson(release: Release) {
  return {
    project: release.project,
    environment: release.environment,
    version: release.version,
    deploymentId: release.deploymentId,
    kind: release.kind,
    triggeredBy: release.triggeredBy,
    since: new Date(release.since).toISOString(),
    ...(release.until !== undefined ? { until: new Date(release.until).toISOString() } : {}),
  };
}

/** Refuses a deployer token limited to other environments than the deployment's. */
async function assertDeploymentEnvironment(
  request: FastifyRequest,
  orchestrator: Orchestrator,
  id: string,
): Promise<void> {
  if (request.identity?.environments) assertEnvironment(request, (await orchestrator.get(id)).environment);
}

/**
 * The orchestrator's routes on the shared server: start, cancel and roll back deployments
 * (a deployer or admin token, whose name is the actor recorded; see src/api/auth.ts), and the
 * saga's own view of a deployment (for `materi deploy` progress).
 */
export function registerOrchestratorRoutes(app: FastifyInstance, orchestrator: Orchestrator): void {
  app.post(
    '/api/deployments',
    { config: { access: 'write' }, schema: { summary: 'Start a deployment of a plan', body: deployBody } },
    async (request, reply) => {
      const body = request.body as {
        plan: string;
        planSource?: string;
        baseDir?: string;
        version: string;
        environment?: string;
        vars?: Record<string, string>;
        triggeredBy?: string;
        queue?: boolean;
        overrideFreeze?: boolean;
        overrideReason?: string;
      };
      if (body.overrideFreeze) assertAdmin(request, 'override a freeze');
      const view = await orchestrator.submit({
        planText: body.plan,
        planSource: body.planSource ?? 'plan',
        baseDir: body.baseDir,
        version: body.version,
        environment: body.environment,
        vars: body.vars,
        triggeredBy: actorOf(request, body.triggeredBy),
        queue: body.queue,
        overrideFreeze: body.overrideFreeze,
        overrideReason: body.overrideReason,
        authorizeEnvironment: (environment) => assertEnvironment(request, environment),
      });
      return reply.status(201).send(view);
    },
  );
  app.post(
    '/api/deployments/:id/cancel',
    {
      config: { access: 'write' },
      schema: {
        summary: 'Cancel a running deployment (optionally rolling back what it deployed)',
        params: idParams,
        body: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          properties: { rollback: { type: 'boolean' }, by: { type: 'string' } },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { rollback?: boolean; by?: string };
      await assertDeploymentEnvironment(request, orchestrator, id);
      const view = await orchestrator.cancel(id, { rollback: body.rollback, by: actorOf(request, body.by) });
      return reply.status(202).send({ id: view.id, status: view.status });
    },
  );
  app.post(
    '/api/deployments/:id/rollback',
    {
      config: { access: 'write' },
      schema: {
        summary: 'Roll a deployment back to the version before it',
        params: idParams,
        body: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          properties: { by: { type: 'string' }, reason: { type: 'string' } },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { by?: string; reason?: string };
      await assertDeploymentEnvironment(request, orchestrator, id);
      const view = await orchestrator.rollback(id, { by: actorOf(request, body.by), reason: body.reason });
      return reply.status(202).send({ id: view.id, status: view.status });
    },
  );
  const answerBody = {
    type: 'object',
    nullable: true,
    additionalProperties: false,
    properties: {
      comment: { type: 'string', maxLength: 2000 },
      by: {
        type: 'string',
        maxLength: 200,
        description: 'Who answers; ignored when a token authenticates the request (its name is recorded)',
      },
    },
  } as const;
  for (const [verb, summary] of [
    ['approve', 'Approve a deployment that waits for an approval (or a paused one): it goes on'],
    ['reject', 'Reject a deployment that waits for an approval (or a paused one): it fails'],
  ] as const) {
    app.post(
      `/api/deployments/:id/${verb}`,
      { config: { access: 'write' }, schema: { summary, params: idParams, body: answerBody } },
      async (request, reply) => {
        const { id } = request.params as { id: string };
        const body = (request.body ?? {}) as { comment?: string; by?: string };
        const answer = {
          by: actorOf(request, body.by),
          comment: body.comment,
          // The plan names the role that may answer (`approval.approvers`, default deployer).
          authorize: request.identity
            ? (wait: { environment: string; approvers: string }) => {
                assertEnvironment(request, wait.environment);
                if (wait.approvers === 'admin') assertAdmin(request, `${verb} an admin approval`);
              }
            : undefined,
        };
        const view =
          verb === 'approve' ? await orchestrator.approve(id, answer) : await orchestrator.reject(id, answer);
        return reply.status(202).send({ id: view.id, status: view.status });
      },
    );
  }
  app.get(
    '/api/environments',
    { schema: { summary: 'The current release of every environment (version, deployment, since when)' } },
    async () => (await orchestrator.environments()).map(releaseJson),
  );
  app.get(
    '/api/environments/:project/:environment/history',
    {
      schema: {
        summary: 'Every release of an environment, newest first',
        params: environmentParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } },
        },
      },
    },
    async (request) => {
      const { project, environment } = request.params as { project: string; environment: string };
      const { limit } = request.query as { limit?: number };
      return (await orchestrator.history(project, environment, limit ?? 100)).map(releaseJson);
    },
  );
  app.post(
    '/api/environments/:project/:environment/rollback',
    {
      config: { access: 'write' },
      schema: {
        summary:
          'Roll an environment back to an earlier release (to, a version that once succeeded there; default the previous good release)',
        params: environmentParams,
        body: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          properties: {
            to: { type: 'string', minLength: 1 },
            by: { type: 'string', maxLength: 200 },
            reason: { type: 'string', maxLength: 500 },
          },
        },
      },
    },
    async (request, reply) => {
      const { project, environment } = request.params as { project: string; environment: string };
      const body = (request.body ?? {}) as { to?: string; by?: string; reason?: string };
      assertEnvironment(request, environment);
      const view = await orchestrator.rollbackEnvironment(project, environment, {
        to: body.to,
        by: actorOf(request, body.by),
        reason: body.reason,
      });
      return reply.status(202).send({ id: view.id, status: view.status, version: view.version });
    },
  );
  app.get(
    '/api/sagas',
    { schema: { summary: "The orchestrator's latest deployments (newest first)" } },
    async () => orchestrator.list(50),
  );
  app.get(
    '/api/deployments/:id/saga',
    {
      schema: {
        summary: "The orchestrator's state of a deployment (phase, gates, stages, published events)",
        params: idParams,
      },
    },
    async (request) => orchestrator.get((request.params as { id: string }).id),
  );
}
