import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { MateriError } from '../errors/index.js';
import type { Logger } from '../runtime/logging.js';
import { type AuthSettings, installAuth } from './auth.js';
import { checkReadiness, type ReadinessCheck } from './readiness.js';

export interface ApiServerOptions {
  auth: AuthSettings;
  logger: Logger;
  /** Served on `GET /metrics`. */
  metrics?: Registry;
  /** Facts for `GET /api/info` and `/healthz` (backends, version). */
  info?: Record<string, unknown>;
  /** Checked by `GET /healthz`; throws when the process is not healthy. */
  health?: () => Promise<void>;
  /** Checked by `GET /readyz`, by name (`bus`, `store`): what the process needs to do its work. */
  ready?: Record<string, ReadinessCheck>;
}

/**
 * The one HTTP server of a Materi process: the orchestrator's and Shield's routes register on it.
 * Errors are JSON `{ "error": { "code", "message" } }` with the code's HTTP status; every route
 * declares its access in `config.access` (`public`, `read` — the default — or `write`).
 */
export async function createApiServer(options: ApiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // Requests are logged at info by fastify; only warnings and errors of the HTTP layer are kept.
    loggerInstance: options.logger.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    bodyLimit: 2 * 1024 * 1024,
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Materi Deploy API',
        version: '1.0.0',
        description: 'Deployments, events, dead letters and workers.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'A token of MATERI_TOKENS_FILE, MATERI_API_TOKEN or MATERI_VIEWER_TOKEN',
          },
        },
      },
      security: [{ bearer: [] }],
    },
  });

  const auth = installAuth(app, options.auth, (message) =>
    options.logger.error({ component: 'auth' }, message),
  );
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    return payload;
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof MateriError) {
      return reply.status(error.httpStatus).send({ error: { code: error.code, message: error.message } });
    }
    const fastifyError = error as { validation?: unknown; statusCode?: number; message: string };
    if (fastifyError.validation || fastifyError.statusCode === 400) {
      return reply
        .status(400)
        .send({ error: { code: 'MATERI_ERR_BAD_INPUT', message: fastifyError.message } });
    }
    if (fastifyError.statusCode === 415 || fastifyError.statusCode === 413) {
      return reply
        .status(fastifyError.statusCode)
        .send({ error: { code: 'MATERI_ERR_BAD_INPUT', message: fastifyError.message } });
    }
    request.log.error({ err: error }, 'request failed');
    return reply
      .status(500)
      .send({ error: { code: 'MATERI_ERR_INTERNAL', message: 'internal error; see the server log' } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: {
        code: 'MATERI_ERR_NOT_FOUND',
        message: `no route ${request.method} ${request.url.split('?')[0]}`,
      },
    }),
  );

  app.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    try {
      await options.health?.();
      return { status: 'ok', ...options.info };
    } catch (error) {
      return reply.status(503).send({ status: 'unhealthy', reason: (error as Error).message });
    }
  });
  app.get('/readyz', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    const readiness = await checkReadiness(options.ready ?? {});
    return reply.status(readiness.ready ? 200 : 503).send(readiness);
  });
  app.get(
    '/api/info',
    { config: { access: 'public' }, schema: { summary: 'Server facts and how it is protected' } },
    async (request) => ({
      ...options.info,
      auth: auth.mode(),
      // What the caller's token (or, without tokens, its address) allows, and who it is.
      caller: {
        canWrite: auth.mayWrite(request),
        ...(request.identity ? { identity: request.identity } : {}),
      },
    }),
  );
  app.get('/api/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  if (options.metrics) {
    const registry = options.metrics;
    app.get('/metrics', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
  }
  return app;
}
