import type { FastifyInstance } from 'fastify';
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
    triggeredBy: { type: 'string', maxLength: 200 },
    queue: { type: 'boolean', description: 'Wait for a busy environment instead of being refused' },
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
} as const;

/**
 * The orchestrator's routes on the shared server: start, cancel and roll back deployments
 * (operator token), and the saga's own view of a deployment (for `materi deploy` progress).
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
      };
      const view = await orchestrator.submit({
        planText: body.plan,
        planSource: body.planSource ?? 'plan',
        baseDir: body.baseDir,
        version: body.version,
        environment: body.environment,
        vars: body.vars,
        triggeredBy: body.triggeredBy ?? 'api',
        queue: body.queue,
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
      const view = await orchestrator.cancel(id, { rollback: body.rollback, by: body.by ?? 'api' });
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
      const view = await orchestrator.rollback(id, { by: body.by ?? 'api', reason: body.reason });
      return reply.status(202).send({ id: view.id, status: view.status });
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
